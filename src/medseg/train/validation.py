"""A fold's validation: the Dice of an epoch, when a time budget validates, and predicting
and scoring the validation cases at the end of training."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.io import Image, read_image, write_image
from medseg.loop import Budget, EpochRecord, validation_due
from medseg.metrics import (
    Evaluation,
    default_jobs,
    dice,
    dice_per_label,
    mask_ignored,
    score_case,
    summarise,
    write_evaluation,
)
from medseg.nn import predict_volume, windows_per_pass
from medseg.preprocess import restore_probabilities
from medseg.runs import Plan
from medseg.runs.plan import IGNORE_CLASS
from medseg.train.sampler import TrainingCase


def validation_dice(plan: Plan, target: np.ndarray, probabilities: np.ndarray) -> dict[int, float]:
    """Dice of each foreground output (1..): per class of the most likely class (the
    target's ignored voxels left out), or per region of its thresholded probability."""
    if not plan.regions:
        prediction = mask_ignored(target, probabilities.argmax(0), IGNORE_CLASS)
        return dice_per_label(target, prediction, range(1, plan.num_classes))
    membership = plan.region_membership()
    return {r + 1: dice(membership[r][target], probabilities[r] > 0.5)
            for r in range(len(membership))}  # fmt: skip


def _validation_seconds(history: list[EpochRecord]) -> list[float]:
    """The seconds of each validation so far (epochs that validated have Dice per label)."""
    return [r.validation_seconds for r in history if r.val_dice]


def epoch_seconds(history: list[EpochRecord]) -> float:
    """How long an epoch like the last one takes with a validation: its training time plus
    the latest validation's."""
    before = history[-2].seconds if len(history) > 1 else 0.0
    training = history[-1].seconds - before - history[-1].validation_seconds
    spent = _validation_seconds(history)
    return training + (spent[-1] if spent else 0.0)


def validation_due_now(history: list[EpochRecord], budget: Budget, share: float) -> bool:
    """Whether the epoch a time budget just trained validates (`medseg.loop.validation_due`:
    the first, the last that fits, and others within ``share`` of the time)."""
    spent = _validation_seconds(history)
    cost = spent[-1] if spent else None
    trained = budget.elapsed() - (history[-1].seconds if history else 0.0)
    return validation_due(
        share=share,
        elapsed=budget.elapsed(),
        validation_seconds=sum(spent),
        last_validation_seconds=cost,
        last_epoch=not budget.epoch_left(len(history) + 1, trained + (cost or 0.0)),
    )


def scored_outputs(
    plan: Plan,
) -> tuple[list[int], dict[int, str], dict[int, list[int]] | None]:
    """What is scored: the foreground label values and their names, or for a region-based
    plan the regions numbered 1.. with their names and label values."""
    if not plan.regions:
        return plan.label_values[1:], dict(zip(plan.label_values[1:], plan.label_names[1:])), None
    assert plan.region_names is not None
    numbers = list(range(1, len(plan.regions) + 1))
    return numbers, dict(zip(numbers, plan.region_names)), dict(zip(numbers, plan.regions))


@torch.no_grad()
def predict_and_score(
    network: nn.Module | Sequence[nn.Module],
    config: Plan,
    cases: list[TrainingCase],
    device: torch.device,
    out_dir: Path,
    dtype: torch.dtype = torch.float32,
) -> Evaluation:
    """Predict every case as `medseg predict` would (50 % overlap, Gaussian weighting, the
    network under autocast in ``dtype``, back on the case's own grid), write the label maps
    and score them against the original label files with the same code as `medseg evaluate`.

    ``network`` may be a list: the models' probabilities are averaged in every window.
    Writes ``{case}{file_ending}``, ``metrics.csv`` and ``summary.json`` into ``out_dir``.
    """
    c = config
    for model in network if isinstance(network, Sequence) else [network]:
        model.eval()
    labels, names, regions = scored_outputs(c)
    rows: list[dict[str, object]] = []
    lesion_rows: list[dict[str, object]] = []
    for case in cases:
        image = torch.from_numpy(np.ascontiguousarray(case.image)).to(device)
        probs = predict_volume(
            network, image, c.patch_size, windows_per_pass(c.dim, c.batch_size, image.device),
            c.slice_axis, activation=c.activation, dtype=dtype,
        ).cpu().numpy()  # fmt: skip
        if case.geometry is not None and case.label_path is not None:
            # back onto the case's own grid, scored against its own label file
            restored = restore_probabilities(probs, case.geometry, c.activation == "softmax")
            prediction = c.labels_from_probabilities(restored)
            affine = np.asarray(case.geometry.original_affine)
            reference = read_image(case.label_path).array[0]
        else:
            prediction = c.labels_from_probabilities(probs)
            affine = case.affine
            reference = c.labels_from_targets(case.target)
        result = Image(prediction[None], affine)
        write_image(result, out_dir / f"{case.case_id}{c.file_ending}")
        scores = score_case(
            case.case_id,
            reference,
            mask_ignored(reference, prediction, c.ignore_label),
            labels,
            names,
            result.spacing,
            threads=default_jobs(),
            regions=regions,
        )
        rows += scores.metrics
        lesion_rows += scores.lesions
    summary = summarise(rows, labels, names, len(cases), lesion_rows)
    evaluation = Evaluation(rows, summary, lesion_rows=lesion_rows, labels=names)
    write_evaluation(evaluation, out_dir)
    return evaluation
