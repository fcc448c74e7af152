"""Temperature scaling of a segmentation's probabilities, fitted on its cross-validation cases.

A network trained with Dice + cross-entropy is often over- or under-confident near the
boundaries, so its entropy map says "sure" or "unsure" in the wrong amounts. Raising the
probabilities to the power 1/T and renormalising (softmax of the log-probabilities divided
by T) keeps every voxel's most likely class and changes only the confidence. `medseg
calibrate` fits T on voxels of the cross-validation cases near the structures (the predicted
and reference foreground, widened by `MARGIN` voxels: far from them every network is right
and sure) by the smallest negative log-likelihood, and keeps it only where it also lowers
the likelihood on folds it was not fitted on (`fit_temperature`); `medseg predict
--uncertainty` then draws its entropy map from the scaled probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.metrics.classification import calibration

#: Voxels around the predicted and reference foreground that are sampled.
MARGIN = 3
#: Voxels sampled per case at most, and in all (the memory of the fit stays bounded).
VOXELS_PER_CASE = 10_000
VOXELS_IN_ALL = 2_000_000
#: A temperature is kept only if it lowers the held-out negative log-likelihood by this share.
MIN_GAIN = 0.01
#: The temperatures tried (log-spaced).
TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 81))
#: Bins of the expected calibration error reported with the fit.
ECE_BINS = 15


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``probabilities`` ``(K, ...)`` with temperature ``temperature`` (1: unchanged).

    Examples
    --------
    >>> p = np.array([[0.8], [0.2]])
    >>> [round(float(v), 3) for v in scale(p, 2.0).ravel()]
    [0.667, 0.333]
    """
    if temperature == 1.0:
        return probabilities
    powered = np.power(np.clip(probabilities, 1e-12, 1.0, dtype=np.float64), 1.0 / temperature)
    return (powered / powered.sum(0, keepdims=True)).astype(np.float32)


def voxel_sample(
    probabilities: np.ndarray,
    classes: np.ndarray,
    predicted: np.ndarray,
    annotated: np.ndarray,
    rng: np.random.Generator,
    cases: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxels near the foreground of one of ``cases`` cases — at most `VOXELS_PER_CASE`, and
    `VOXELS_IN_ALL` over all of them: their probabilities ``(N, K)`` and reference class
    indices ``(N,)``. ``classes`` holds the reference's class indices, ``predicted`` the
    predicted ones, ``annotated`` where the reference counts (not an ignored voxel)."""
    near = ndimage.binary_dilation((classes > 0) | (predicted > 0), iterations=MARGIN)
    where = np.flatnonzero(near & annotated)
    limit = max(1, min(VOXELS_PER_CASE, VOXELS_IN_ALL // max(cases, 1)))
    if len(where) > limit:
        where = rng.choice(where, limit, replace=False)
    flat = probabilities.reshape(len(probabilities), -1)
    return flat[:, where].T.astype(np.float32), classes.ravel()[where]


@dataclass(frozen=True)
class TemperatureFit:
    """The chosen temperature and the evidence: negative log-likelihood and expected
    calibration error of the sampled voxels before and after, on the folds it was fitted on
    and on the folds it was not (each fold scored by a temperature fitted on the others)."""

    temperature: float
    fitted: float
    nll_before: float
    nll_after: float
    held_out_nll_before: float
    held_out_nll_after: float
    ece_before: float
    ece_after: float
    voxels: int


def fit_temperature(samples: dict[int, tuple[np.ndarray, np.ndarray]]) -> TemperatureFit:
    """Fit T on the samples of every fold (fold -> (probabilities, classes)); keep it when
    the folds, each scored with a T fitted on the others, lose at least `MIN_GAIN` of their
    negative log-likelihood (a single fold: the fit's own gain decides). Without any voxel,
    T = 1 and the measures are NaN."""
    samples = {fold: sample for fold, sample in samples.items() if len(sample[1])}
    if not samples:  # no foreground anywhere, predicted or annotated: nothing to fit
        nan = float("nan")
        return TemperatureFit(1.0, 1.0, nan, nan, nan, nan, nan, nan, 0)
    probabilities = np.concatenate([p for p, _ in samples.values()])
    classes = np.concatenate([c for _, c in samples.values()])
    fitted = _best_temperature(probabilities, classes)
    before, after = _nll(probabilities, classes, 1.0), _nll(probabilities, classes, fitted)
    held_before = held_after = 0.0
    if len(samples) > 1:
        for fold, (p, c) in samples.items():
            others = [v for k, v in samples.items() if k != fold]
            t = _best_temperature(np.concatenate([o[0] for o in others]),
                                  np.concatenate([o[1] for o in others]))  # fmt: skip
            held_before += _nll(p, c, 1.0) * len(c)
            held_after += _nll(p, c, t) * len(c)
        held_before, held_after = held_before / len(classes), held_after / len(classes)
    else:
        held_before, held_after = before, after
    keep = held_after <= (1 - MIN_GAIN) * held_before
    ece_before, ece_after = _ece(probabilities, classes, 1.0), _ece(probabilities, classes, fitted)
    return TemperatureFit(
        temperature=fitted if keep else 1.0, fitted=fitted, nll_before=before, nll_after=after,
        held_out_nll_before=held_before, held_out_nll_after=held_after,
        ece_before=ece_before, ece_after=ece_after, voxels=len(classes),
    )  # fmt: skip


def _best_temperature(probabilities: np.ndarray, classes: np.ndarray) -> float:
    losses = [_nll(probabilities, classes, t) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def _nll(probabilities: np.ndarray, classes: np.ndarray, temperature: float) -> float:
    scaled = scale(probabilities.T, temperature).T
    chosen = scaled[np.arange(len(classes)), classes]
    return float(-np.log(np.clip(chosen, 1e-12, 1.0)).mean())


def _ece(probabilities: np.ndarray, classes: np.ndarray, temperature: float) -> float:
    """Expected calibration error of the most likely class (`ECE_BINS` equal-width bins)."""
    return calibration(classes, scale(probabilities.T, temperature).T, ECE_BINS)[0]
