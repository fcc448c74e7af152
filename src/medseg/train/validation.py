"""Predicting and scoring a fold's validation cases at the end of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.io import Image, read_image, write_image
from medseg.metrics import (
    Evaluation,
    default_jobs,
    mask_ignored,
    score_case,
    summarise,
    write_evaluation,
)
from medseg.nn import predict_volume, windows_per_pass
from medseg.preprocess import restore_probabilities
from medseg.runs import Plan
from medseg.train.sampler import TrainingCase


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
    network: nn.Module,
    config: Plan,
    cases: list[TrainingCase],
    device: torch.device,
    out_dir: Path,
) -> Evaluation:
    """Predict every case as `medseg predict` would (50 % overlap, Gaussian weighting, back
    on the case's own grid), write the label maps and score them against the original label
    files with the same code as `medseg evaluate`.

    Writes ``{case}{file_ending}``, ``metrics.csv`` and ``summary.json`` into ``out_dir``.
    """
    c = config
    network.eval()
    labels, names, regions = scored_outputs(c)
    rows: list[dict[str, object]] = []
    lesion_rows: list[dict[str, object]] = []
    for case in cases:
        image = torch.from_numpy(np.ascontiguousarray(case.image)).to(device)
        probs = predict_volume(
            network, image, c.patch_size, windows_per_pass(c.dim, c.batch_size, image.device),
            c.slice_axis, activation=c.activation,
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
