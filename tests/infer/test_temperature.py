"""Temperature scaling of segmentation probabilities, fitted on cross-validation voxels."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.infer import temperature
from medseg.infer.quality import Calibration, entropy_map
from medseg.infer.temperature import fit_temperature, scale, voxel_sample
from medseg.infer.uncertainty_files import write_uncertainty
from medseg.io import Image, read_image


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _folds(sharpness: float, seed: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Two folds of voxels whose classes are drawn from softmax(z), shown to the fit as
    softmax(sharpness * z): over-confident for sharpness > 1, calibrated at 1."""
    rng = np.random.default_rng(seed)
    folds = {}
    for fold in range(2):
        logits = rng.normal(0, 1.5, (20_000, 3))
        truth = _softmax(logits)
        classes = (rng.random((len(truth), 1)) > truth.cumsum(1)).sum(1)
        folds[fold] = (_softmax(sharpness * logits).astype(np.float32), classes)
    return folds


def test_scaling_keeps_the_class_and_changes_the_confidence():
    rng = np.random.default_rng(0)
    p = _softmax(rng.normal(0, 2, (50, 4))).T  # (K, N)
    for t in (0.5, 2.0):
        scaled = scale(p, t)
        assert np.allclose(scaled.sum(0), 1, atol=1e-6)
        assert (scaled.argmax(0) == p.argmax(0)).all()
    assert (scale(p, 2.0).max(0) <= p.max(0) + 1e-6).all()  # T > 1 softens
    assert (scale(p, 0.5).max(0) >= p.max(0) - 1e-6).all()  # T < 1 sharpens
    assert scale(p, 1.0) is p


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_over_confident_network_is_cooled_and_a_calibrated_one_left_alone(seed):
    fit = fit_temperature(_folds(3.0, seed))
    assert fit.temperature == fit.fitted and 2.5 < fit.temperature < 3.6
    assert fit.held_out_nll_after < 0.9 * fit.held_out_nll_before
    assert fit.ece_after < fit.ece_before / 3
    calibrated = fit_temperature(_folds(1.0, seed))
    assert 0.85 < calibrated.fitted < 1.15  # the fit finds about 1 ...
    assert calibrated.temperature == 1.0  # ... and gains less than MIN_GAIN: not kept


def test_no_voxel_fits_nothing():
    empty = (np.zeros((0, 3), np.float32), np.zeros(0, np.int64))
    fit = fit_temperature({0: empty, 1: empty})
    assert fit.temperature == 1.0 and fit.voxels == 0 and np.isnan(fit.nll_before)
    folds = _folds(3.0, 0)
    with_an_empty_fold = fit_temperature({**folds, 2: empty})  # the empty fold is left out
    assert with_an_empty_fold == fit_temperature(folds)


def test_voxels_are_sampled_near_the_foreground_only():
    classes = np.zeros((20, 20), np.int64)
    classes[5:8, 5:8] = 1
    predicted = np.zeros_like(classes)
    predicted[12, 12] = 2
    annotated = np.ones_like(classes, bool)
    annotated[5, 5] = False  # an ignored voxel
    probabilities = np.stack([np.full((20, 20), 0.5)] * 2 + [np.zeros((20, 20))])
    probabilities[2] = np.arange(400).reshape(20, 20)  # tells the voxels apart
    picked, picked_classes = voxel_sample(
        probabilities, classes, predicted, annotated, np.random.default_rng(0)
    )
    index = picked[:, 2].astype(int)
    rows, cols = np.unravel_index(index, (20, 20))
    near_reference = (rows >= 2) & (rows <= 10) & (cols >= 2) & (cols <= 10)
    near_prediction = (abs(rows - 12) + abs(cols - 12)) <= temperature.MARGIN
    assert (near_reference | near_prediction).all() and 5 * 20 + 5 not in index
    assert (picked_classes == classes.ravel()[index]).all()
    assert len(index) == len(set(index.tolist())) > 9
    many = temperature.VOXELS_IN_ALL // 5  # with this many cases each gives 5 voxels at most
    few, _ = voxel_sample(probabilities, classes, predicted, annotated, np.random.default_rng(0),
                          cases=many)  # fmt: skip
    assert len(few) == 5 and set(few[:, 2].tolist()) <= set(picked[:, 2].tolist())


def test_the_uncertainty_map_uses_the_calibrated_temperature(tmp_path):
    probabilities = np.stack([np.full((4, 4, 4), 0.9), np.full((4, 4, 4), 0.1)])
    labels = Image(np.zeros((1, 4, 4, 4), np.uint8), np.eye(4))
    cooled = Calibration("mean_entropy", 0.5, 1.0, 1.0, {}, 10, 0.1, 0.1, temperature=2.0)
    plain = read_image(write_uncertainty(probabilities, labels, tmp_path, "a")).array
    hotter = read_image(write_uncertainty(probabilities, labels, tmp_path, "b", cooled)).array
    assert np.allclose(plain, entropy_map(probabilities))
    assert np.allclose(hotter, entropy_map(scale(probabilities, 2.0)))
    assert (hotter > plain + 0.1).all()
