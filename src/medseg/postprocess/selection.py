"""Choosing post-processing from cross-validation predictions: a greedy search that keeps an
operation only if it raises the mean Dice (rule: docs/postprocess.md)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medseg.bounding_box import bounding_box
from medseg.metrics import Confusion
from medseg.metrics.lesions import components
from medseg.postprocess.model import (
    ForegroundTrial,
    LabelChoice,
    LabelTrial,
    Operation,
    Postprocessing,
)
from medseg.postprocess.operations import keep_largest_foreground
from medseg.progress import make_progress

#: A candidate must raise its label's mean Dice by more than this to be kept: smaller gains
#: are within what one voxel in one case moves, not evidence.
MIN_GAIN = 1e-4
#: Candidate radii (voxels of the finest axis) of the neighbourhood operations.
CANDIDATE_RADII: dict[str, tuple[int, ...]] = {"opening": (1,), "closing": (1,), "smooth": (1, 2)}
#: Candidate size thresholds for removing small components, as fractions of the 5th
#: percentile of the label's reference component volumes over the cases.
SMALL_FRACTIONS = (0.1, 0.25, 0.5)
#: The order in which operation families are tried for each label.
FAMILIES = (
    "keep_largest",
    "remove_small",
    "fill_holes",
    "fill_holes_slices",
    "opening",
    "closing",
    "smooth",
)
#: Cases are cropped to the foreground of prediction and reference plus this margin: no
#: candidate reaches further (closing needs 2r + 2 voxels), so Dice and every operation's
#: result are the same as on the whole image.
CROP_MARGIN = 2 * max(max(r) for r in CANDIDATE_RADII.values()) + 2


def crop_to_foreground(
    prediction: np.ndarray, reference: np.ndarray, margin: int = CROP_MARGIN
) -> tuple[np.ndarray, np.ndarray]:
    """Both label maps cropped to the bounding box of their joint foreground grown by
    ``margin`` voxels (views, not copies); one voxel of each when both are empty.

    Examples
    --------
    >>> pred = np.zeros((50, 50), np.uint8); pred[10, 10] = 1
    >>> ref = np.zeros((50, 50), np.uint8); ref[12, 20] = 1
    >>> [a.shape for a in crop_to_foreground(pred, ref, margin=2)]
    [(7, 15), (7, 15)]
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"shapes differ: {prediction.shape} vs {reference.shape}")
    foreground = (prediction != 0) | (reference != 0)
    box = bounding_box(foreground, margin)
    if box is None:  # both empty: one background voxel rather than zero-size arrays
        box = (slice(0, 1),) * foreground.ndim
    return prediction[box], reference[box]


@dataclass(frozen=True)
class _Case:
    reference: np.ndarray
    spacing: tuple[float, ...]


def _dice_table(
    predictions: Sequence[np.ndarray], cases: Sequence[_Case], values: list[int]
) -> np.ndarray:
    """Dice per case (rows) and label (columns); NaN where undefined (both masks empty)."""
    table = np.empty((len(cases), len(values)))
    for i, (prediction, case) in enumerate(zip(predictions, cases)):
        for j, value in enumerate(values):
            table[i, j] = Confusion.of_masks(case.reference == value, prediction == value).dice
    return table


def _means(table: np.ndarray) -> list[float | None]:
    """Each label's mean Dice over the cases where it is defined (None if in none)."""
    means: list[float | None] = []
    for column in table.T:
        defined = column[~np.isnan(column)]
        means.append(math.fsum(defined) / defined.size if defined.size else None)
    return means


def _acceptable(
    old: list[float | None], new: list[float | None], target: int | None, min_gain: float
) -> bool:
    """Whether ``new`` means improve on ``old``: the ``target`` label (any label for None)
    rises by more than ``min_gain`` and no label falls at all."""

    def rises(j: int) -> bool:
        before, after = old[j], new[j]
        return before is not None and after is not None and after > before + min_gain

    for before, after in zip(old, new):
        if before is not None and (after is None or after < before):
            return False
    targets = range(len(old)) if target is None else [target]
    return any(rises(j) for j in targets)


def _order(mean: float | None) -> float:
    """A mean Dice for comparisons: undefined ranks below any value."""
    return -math.inf if mean is None else mean


def _small_thresholds(value: int, cases: Sequence[_Case]) -> list[float]:
    """Candidate minimum volumes (mm³) for removing small components of ``value``."""
    volumes: list[np.ndarray] = []
    for case in cases:
        mask = case.reference == value
        if mask.any():
            numbered, count = components(mask)
            sizes = np.bincount(numbered.ravel(), minlength=count + 1)[1:]
            volumes.append(sizes * math.prod(case.spacing))
    if not volumes:
        return []
    smallest = float(np.percentile(np.concatenate(volumes), 5))
    voxel = min(math.prod(case.spacing) for case in cases)
    # three significant digits: a readable file, and exactly the value that was evaluated
    thresholds = {float(f"{fraction * smallest:.3g}") for fraction in SMALL_FRACTIONS}
    return sorted(t for t in thresholds if t > voxel)


def _candidates(
    family: str, value: int, cases: Sequence[_Case], chosen: list[Operation]
) -> list[Operation]:
    if family == "remove_small":
        if any(op.name == "keep_largest" for op in chosen):
            return []  # after keeping one component, removing small ones adds nothing
        return [
            Operation(name="remove_small", min_volume_mm3=t)
            for t in _small_thresholds(value, cases)
        ]
    if family == "fill_holes_slices" and not any(c.reference.ndim == 3 for c in cases):
        return []
    if family in CANDIDATE_RADII:
        return [Operation(name=family, radius=r) for r in CANDIDATE_RADII[family]]  # type: ignore[arg-type]
    return [Operation(name=family)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Outcome:
    means: list[float | None]  # per label
    predictions: list[np.ndarray]  # per case
    trial: int  # index in the label's trials


def _best_candidate(
    candidates: Sequence[Operation],
    j: int,
    values: list[int],
    current: Sequence[np.ndarray],
    work: Sequence[_Case],
    trials: list[LabelTrial],
) -> _Outcome | None:
    """Apply each candidate to label ``values[j]`` of every case, record a trial for each,
    and return the one with the highest mean Dice of that label (the first of equals)."""
    best: _Outcome | None = None
    value = values[j]
    for operation in candidates:
        trial = [operation.apply(p, value, case.spacing) for p, case in zip(current, work)]
        means = _means(_dice_table(trial, work, values))
        trials.append(LabelTrial(operation=operation, mean_dice=means[j], accepted=False))
        if best is None or _order(means[j]) > _order(best.means[j]):
            best = _Outcome(means, trial, len(trials) - 1)
    return best


def _label_names(values: list[int], names: Sequence[str] | Mapping[int, str] | None) -> list[str]:
    if names is None:
        return [str(v) for v in values]
    if isinstance(names, Mapping):
        return [str(names.get(v, v)) for v in values]
    if len(names) != len(values):
        raise ValueError(f"{len(names)} label names for {len(values)} foreground labels")
    return [str(n) for n in names]


def choose_postprocessing(
    cases: Sequence[tuple[np.ndarray, np.ndarray, Sequence[float]]],
    label_values: Sequence[int],
    label_names: Sequence[str] | Mapping[int, str] | None = None,
    min_gain: float = MIN_GAIN,
    quiet: bool = True,
) -> Postprocessing:
    """Choose post-processing from ``(prediction, reference, spacing)`` triples (integer
    label maps of the same shape) for the foreground ``label_values`` (0 is ignored).

    Greedy, as nnU-Net does: first the largest component of the whole foreground (with two
    or more labels); then for each label, in increasing value, each family of operations in
    `FAMILIES` order, each on top of what is already kept. A family's best candidate is kept
    if it raises the label's mean Dice by more than ``min_gain`` and lowers no label's mean
    Dice. Mean Dice skips cases where it is undefined (label absent from both maps).
    ``label_names`` are in the order of the sorted foreground values, or a value -> name map.

    Examples
    --------
    >>> ref = np.zeros((12, 12), np.uint8); ref[2:7, 2:7] = 1
    >>> pred = ref.copy(); pred[10, 10] = 1  # a spurious speck
    >>> choice = choose_postprocessing([(pred, ref, (1.0, 1.0))] * 3, [1], ["organ"])
    >>> [op.name for op in choice.operations_for(1)], choice.labels[0].mean_dice_after
    (['keep_largest'], 1.0)
    """
    values = sorted({int(v) for v in label_values} - {0})
    if not values:
        raise ValueError("no foreground label values to post-process")
    names = _label_names(values, label_names)
    work: list[_Case] = []
    current: list[np.ndarray] = []
    for index, (prediction, reference, spacing) in enumerate(cases):
        prediction, reference = np.asarray(prediction), np.asarray(reference)
        if prediction.shape != reference.shape:
            raise ValueError(
                f"case {index}: shapes differ: {prediction.shape} vs {reference.shape}"
            )
        if len(spacing) != prediction.ndim:
            raise ValueError(f"case {index}: spacing {tuple(spacing)} for shape {prediction.shape}")
        prediction, reference = crop_to_foreground(prediction, reference)
        work.append(_Case(reference, tuple(float(s) for s in spacing)))
        current.append(prediction)
    if not work:
        raise ValueError("no cases to choose post-processing from")

    table = _dice_table(current, work, values)
    before = _means(table)
    defined = (~np.isnan(table)).sum(axis=0)
    means = before
    result = Postprocessing(cases=len(work), min_gain=min_gain)
    with make_progress(quiet) as progress:
        bar = progress.add_task("choosing post-processing", total=1 + len(values) * len(FAMILIES))
        if len(values) >= 2:
            trial = [keep_largest_foreground(p) for p in current]
            trial_means = _means(_dice_table(trial, work, values))
            accepted = _acceptable(means, trial_means, None, min_gain)
            result.foreground_trial = ForegroundTrial(
                mean_dice=dict(zip(values, trial_means)), accepted=accepted
            )
            if accepted:
                result.keep_largest_foreground = True
                current, means = trial, trial_means
        progress.advance(bar)
        for j, value in enumerate(values):
            chosen: list[Operation] = []
            trials: list[LabelTrial] = []
            for family in FAMILIES:
                candidates = _candidates(family, value, work, chosen)
                best = _best_candidate(candidates, j, values, current, work, trials)
                if best is not None and _acceptable(means, best.means, j, min_gain):
                    means, current = best.means, best.predictions
                    trials[best.trial].accepted = True
                    chosen.append(trials[best.trial].operation)
                progress.advance(bar)
            result.labels.append(
                LabelChoice(
                    value=value,
                    name=names[j],
                    operations=chosen,
                    cases=int(defined[j]),
                    mean_dice_before=before[j],
                    trials=trials,
                )
            )
    after = _means(_dice_table(current, work, values))
    for j, label in enumerate(result.labels):
        label.mean_dice_after = after[j]
    return result
