"""Detection from segmentation: lesion lists from a label map and its probabilities, and the
free-response ROC (FROC) of such lists against reference lesions (numpy + cc3d).

A predicted lesion is a connected component (full connectivity) of one label, described by its
centroid in world millimetres, bounding box, volume and confidence (the mean and the maximum
of that label's probability over its voxels). As in LUNA16, a predicted lesion detects a
reference lesion when its centroid lies within the reference lesion's radius (of the sphere of
the same volume) of the reference centroid; a reference lesion detected several times counts
once (the others are neither hits nor false positives); every other prediction is a false
positive. The FROC gives the sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per
case (the best sensitivity reached without more false positives per case) and their mean.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from medseg.errors import MedsegError, located
from medseg.io import read_image
from medseg.metrics.lesions import components

#: The largest lesions.csv read.
MAX_TABLE_BYTES = 256 * 2**20
#: LUNA16's false-positive rates per case.
FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class Lesion:
    """One connected component: centroid (world mm), voxel bounding box (first, last),
    volume (ml), and confidence (mean and max probability; 1.0 without probabilities)."""

    centroid_mm: tuple[float, ...]
    bbox_first: tuple[int, ...]
    bbox_last: tuple[int, ...]
    volume_ml: float
    confidence_mean: float
    confidence_max: float

    @property
    def radius_mm(self) -> float:
        """The radius of the sphere (circle in 2D) of the same volume (area)."""
        if len(self.centroid_mm) == 2:
            return float(np.sqrt(self.volume_ml * 1000 / np.pi))
        return float((3 * self.volume_ml * 1000 / (4 * np.pi)) ** (1 / 3))


def find_lesions(
    mask: np.ndarray, affine: np.ndarray, probability: np.ndarray | None = None
) -> list[Lesion]:
    """The connected components of ``mask`` (2D or 3D, voxel axes of ``affine``) as lesions.

    Examples
    --------
    >>> mask = np.zeros((10, 10, 4), bool); mask[2:4, 2:4, 1:3] = True
    >>> lesion, = find_lesions(mask, np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> lesion.centroid_mm, lesion.volume_ml
    ((5.0, 5.0, 4.5), 0.096)
    """
    labels, count = components(mask)
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    spacing = np.linalg.norm(affine[: mask.ndim, : mask.ndim], axis=0)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    ones = np.ones(mask.shape)
    sizes = ndimage.sum_labels(ones, labels, index)
    centres = np.array(ndimage.center_of_mass(ones, labels, index)).reshape(count, -1)
    boxes = ndimage.find_objects(labels)
    if probability is None:
        means = maxima = np.ones(count)
    else:
        means = ndimage.mean(probability, labels, index)
        maxima = ndimage.maximum(probability, labels, index)
    lesions = []
    for k in range(count):
        world = affine[: mask.ndim, : mask.ndim] @ centres[k] + affine[: mask.ndim, 3]
        box = boxes[k]
        lesions.append(
            Lesion(
                tuple(round(float(v), 3) for v in world),
                tuple(int(s.start) for s in box),
                tuple(int(s.stop) - 1 for s in box),
                round(float(sizes[k]) * voxel_ml, 6),
                float(means[k]),
                float(maxima[k]),
            )
        )
    return lesions


def froc(
    predicted: list[list[tuple[tuple[float, ...], float]]],
    reference: list[list[Lesion]],
    rates: tuple[float, ...] = FP_RATES,
) -> dict[str, object]:
    """FROC of per-case predicted lesions ``(centroid_mm, confidence)`` against per-case
    reference lesions (same case order); see the module text.

    Examples
    --------
    >>> ref = [[Lesion((0.0, 0.0, 0.0), (0, 0, 0), (1, 1, 1), 4.2, 1, 1)]]  # radius 10 mm
    >>> found = froc([[((3.0, 0.0, 0.0), 0.9), ((50.0, 0.0, 0.0), 0.8)]], ref)
    >>> found["sensitivity"]["1"], found["sensitivity"]["0.125"], found["mean_sensitivity"]
    (1.0, 1.0, 1.0)
    """
    events = []  # (confidence, case, hit reference index or -1)
    for case, (found, truth) in enumerate(zip(predicted, reference)):
        for centroid, confidence in found:
            events.append((confidence, case, _hit(centroid, truth)))
    total = sum(len(truth) for truth in reference)
    cases = max(len(reference), 1)
    events.sort(key=lambda e: -e[0])
    detected: set[tuple[int, int]] = set()
    false_positives, curve = 0, [(0.0, 0.0)]
    for _, case, hit in events:
        if hit < 0:
            false_positives += 1
        elif (case, hit) in detected:
            continue  # a second detection of one lesion: neither hit nor false positive
        else:
            detected.add((case, hit))
        curve.append((false_positives / cases, len(detected) / total if total else np.nan))
    fp_per_case = np.array([c[0] for c in curve])
    sensitivity = np.array([c[1] for c in curve])
    at = {f"{r:g}": float(np.max(sensitivity[fp_per_case <= r])) for r in rates}
    return {
        "sensitivity": at,
        "mean_sensitivity": float(np.mean(list(at.values()))),
        "reference_lesions": total,
        "predicted_lesions": len(events),
        "cases": len(reference),
    }


def _hit(centroid: tuple[float, ...], truth: list[Lesion]) -> int:
    """The nearest reference lesion whose radius reaches ``centroid``, or -1."""
    best, best_distance = -1, np.inf
    for k, lesion in enumerate(truth):
        distance = float(np.linalg.norm(np.subtract(centroid, lesion.centroid_mm)))
        if distance <= lesion.radius_mm and distance < best_distance:
            best, best_distance = k, distance
    return best


def is_lesion_list(path: Path) -> bool:
    """Whether ``path`` is a lesion list of ``medseg predict --lesions`` (its header names
    ``confidence_max``), not the per-case lesion counts ``medseg evaluate`` and training's
    validation write under the same name."""
    with open(path, encoding="utf-8", errors="replace") as stream:
        header = stream.readline(4096)
    return "confidence_max" in next(csv.reader([header]), [])


def froc_from_files(
    lesions_csv: Path, references: dict[str, Path], label_names: dict[int, str]
) -> dict[str, dict[str, object]]:
    """Per label name, the FROC of ``lesions.csv`` (from ``medseg predict --lesions``, ranked
    by ``confidence_max``) against the components of each case's reference label map."""
    if lesions_csv.stat().st_size > MAX_TABLE_BYTES:
        raise MedsegError(located(lesions_csv, f"larger than {MAX_TABLE_BYTES} bytes"))
    found: dict[tuple[str, str], list[tuple[tuple[float, ...], float]]] = {}
    with open(lesions_csv, newline="", encoding="utf-8") as stream:
        for number, row in enumerate(csv.DictReader(stream), start=2):
            try:
                centre = tuple(float(row[f"centroid_{a}_mm"]) for a in "xyz")
                found.setdefault((row["case"], row["label"]), []).append(
                    (centre, float(row["confidence_max"]))
                )
            except (KeyError, TypeError, ValueError):
                raise MedsegError(
                    located(lesions_csv, f"line {number}: not a lesion row")
                ) from None
    predicted: dict[str, list] = {name: [] for name in label_names.values()}
    reference: dict[str, list] = {name: [] for name in label_names.values()}
    for case, path in sorted(references.items()):
        image = read_image(path)
        for value, name in label_names.items():
            truth = find_lesions(image.array[0] == value, image.affine)
            reference[name].append(truth)
            dims = image.array.ndim - 1
            predicted[name].append([(c[:dims], p) for c, p in found.get((case, name), [])])
    return {name: froc(predicted[name], reference[name]) for name in label_names.values()}
