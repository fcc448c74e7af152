"""medseg's metrics agree with MONAI's wherever the definitions agree (docs/metrics.md).

The voxel counts TP, FP, FN, TN must be equal. IoU (float64 in MONAI) must match to 1e-9.
MONAI returns Dice, precision, recall, specificity and every distance as float32, medseg
float64: those must match to 1e-9 (ratios) or 1e-6 mm (distances), or to two float32 units
in the last place of MONAI's value where that is coarser (e.g. 1.2e-7 for a Dice of 0.9,
3.8e-6 mm at 20 mm).

HD95 is checked on MONAI's own directed distances: MONAI takes the percentile with
torch.quantile in float32, whose rank q * (n - 1) is itself rounded, which moves its HD95 by
up to ~1e-5 mm; the definition (the larger of the two directed 95th percentiles, linear
interpolation) is what must agree, and it does to 1e-6 mm on the same distances.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from medseg.io import read_image
from medseg.metrics import score_label

torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")


def _monai(reference: np.ndarray, prediction: np.ndarray, spacing, tolerance: float) -> dict:
    """MONAI's value of every metric both libraries define, for two boolean masks."""
    ref = torch.from_numpy(reference[None, None].astype(np.float64))
    pred = torch.from_numpy(prediction[None, None].astype(np.float64))
    spacing = [float(s) for s in spacing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about empty masks
        confusion = monai_metrics.get_confusion_matrix(pred, ref)
        every = {"include_background": True, "spacing": spacing}
        tp, fp, tn, fn = (int(v) for v in confusion.reshape(-1))
        return {
            "counts": (tp, fp, fn, tn),
            "dice": float(monai_metrics.compute_dice(pred, ref, ignore_empty=True)),
            "iou": float(monai_metrics.compute_iou(pred, ref, ignore_empty=True)),
            "precision": float(
                monai_metrics.compute_confusion_matrix_metric("precision", confusion)
            ),
            "recall": float(monai_metrics.compute_confusion_matrix_metric("recall", confusion)),
            "specificity": float(
                monai_metrics.compute_confusion_matrix_metric("specificity", confusion)
            ),
            "hd": float(monai_metrics.compute_hausdorff_distance(pred, ref, **every)),
            "hd95": _hd95_of_monai_distances(pred, ref, spacing),
            "assd": float(
                monai_metrics.compute_average_surface_distance(pred, ref, symmetric=True, **every)
            ),
            "nsd": float(monai_metrics.compute_surface_dice(pred, ref, [tolerance], **every)),
        }


def _hd95_of_monai_distances(pred, ref, spacing) -> float:
    """HD95 by its definition, in float64, on the directed distances MONAI computes."""
    _, distances, _ = monai_metrics.utils.get_edge_surface_distance(
        pred[0, 0].bool(), ref[0, 0].bool(), spacing=spacing, symmetric=True
    )
    if any(d.numel() == 0 or not torch.isfinite(d).all() for d in distances):
        return float("nan")
    return max(float(np.percentile(d.double().numpy(), 95)) for d in distances)


OVERLAP = ("dice", "iou", "precision", "recall", "specificity")
DISTANCE = ("hd", "hd95", "assd", "nsd")


def _assert_agree(reference: np.ndarray, prediction: np.ndarray, spacing, tolerance=1.0) -> None:
    ours, _ = score_label(reference, prediction, spacing, tolerance)
    theirs = _monai(reference, prediction, spacing, tolerance)
    assert (ours["tp"], ours["fp"], ours["fn"], ours["tn"]) == theirs["counts"]
    assert abs(ours["iou"] - theirs["iou"]) <= 1e-9
    for metric in OVERLAP + DISTANCE:
        base = 1e-6 if metric in DISTANCE else 1e-9
        allowed = max(base, 2 * float(np.spacing(np.float32(theirs[metric]))))
        assert abs(ours[metric] - theirs[metric]) <= allowed, (metric, ours[metric], theirs)


def _blob(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 2.0) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, rng.uniform(0.55, 0.9))


@pytest.mark.parametrize("seed", range(8))
def test_random_blobs(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    ndim = 3 if seed % 4 else 2
    shape = tuple(int(n) for n in rng.integers(16, 48, ndim))
    spacing = tuple(float(s) for s in rng.uniform(0.4, 3.0, ndim))  # anisotropic
    _assert_agree(_blob(rng, shape), _blob(rng, shape), spacing, tolerance=rng.uniform(0.5, 3))


def test_thin_structures() -> None:
    # One-voxel-thick sheets and lines: every voxel is a surface voxel.
    reference = np.zeros((30, 30, 12), bool)
    prediction = np.zeros_like(reference)
    reference[:, :, 5] = True  # a sheet
    prediction[:, :, 6] = True  # the same sheet one slice up
    reference[np.arange(30), np.arange(30), 2] = True  # a diagonal line
    prediction[np.arange(29), np.arange(1, 30), 2] = True  # shifted by one voxel
    _assert_agree(reference, prediction, (0.8, 0.8, 2.5), tolerance=1.0)
    _assert_agree(reference[:, :, 2], prediction[:, :, 2], (0.5, 0.5))


def test_far_false_positive_and_shifted_objects() -> None:
    rng = np.random.default_rng(7)
    reference = _blob(rng, (40, 40, 20), sigma=3)
    prediction = np.roll(reference, (2, -1, 1), axis=(0, 1, 2))
    prediction[0:2, 0:2, 0:2] = True  # a far-away spurious blob drives HD
    _assert_agree(reference, prediction, (1.2, 0.7, 3.0), tolerance=2.0)


def test_real_hippocampus_label_maps(hippocampus_dir) -> None:
    # Reference: the real label map; prediction: the same structure shifted and dilated,
    # as a plausible imperfect segmentation of a real shape.
    for path in sorted((hippocampus_dir / "labelsTr").glob("*.nii.gz"))[:3]:
        image = read_image(path)
        labels = image.array[0]
        for value in (1, 2):
            reference = labels == value
            prediction = ndimage.binary_dilation(np.roll(reference, 1, axis=0))
            _assert_agree(reference, prediction, image.spacing, tolerance=1.0)


def test_real_em_membranes(isbi_dir) -> None:
    # Thin 2D membranes (label 1) of a real EM label map against their eroded copy.
    image = read_image(sorted((isbi_dir / "labelsTr").glob("*.png"))[0])
    reference = image.array[0] == 1
    prediction = ndimage.binary_erosion(reference) | np.roll(reference, 3, axis=1)
    _assert_agree(reference[:256, :256], prediction[:256, :256], image.spacing)


def test_real_brain_tissue_maps(mni_dir) -> None:
    # Grey matter of the MNI template thresholded at two probabilities (a central crop).
    image = read_image(mni_dir / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz")
    crop = image.array[0][60:130, 70:150, 60:120]
    _assert_agree(crop > 128, crop > 90, image.spacing, tolerance=1.0)


def test_both_empty_agrees() -> None:
    empty = np.zeros((10, 10, 10), bool)
    ours, _ = score_label(empty, empty)
    theirs = _monai(empty, empty, (1, 1, 1), 1.0)
    for metric in OVERLAP + DISTANCE:
        assert (math.isnan(ours[metric]) and math.isnan(theirs[metric])) or ours[metric] == theirs[
            metric
        ], metric


def test_one_empty_documented_differences() -> None:
    # docs/metrics.md: with one mask empty, medseg's Dice and IoU are 0 (MONAI's
    # ignore_empty=True gives NaN for an empty reference), and HD, HD95 and ASSD are
    # undefined (NaN) where MONAI gives inf or NaN; precision, recall and NSD agree.
    empty = np.zeros((10, 10, 10), bool)
    cube = empty.copy()
    cube[2:6, 2:6, 2:6] = True
    for reference, prediction in ((empty, cube), (cube, empty)):
        ours, _ = score_label(reference, prediction)
        theirs = _monai(reference, prediction, (1, 1, 1), 1.0)
        assert ours["dice"] == 0.0 and ours["iou"] == 0.0
        for metric in ("precision", "recall", "specificity", "nsd"):
            same = abs(ours[metric] - theirs[metric]) <= 1e-7  # MONAI's float32
            assert same or (math.isnan(ours[metric]) and math.isnan(theirs[metric])), metric
        for metric in ("hd", "assd"):
            assert math.isnan(ours[metric])
            assert math.isinf(theirs[metric]), metric
        assert math.isnan(ours["hd95"])
    ours, _ = score_label(empty, cube)
    assert math.isnan(_monai(empty, cube, (1, 1, 1), 1.0)["dice"])
