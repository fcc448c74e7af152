"""Where a two-label prediction's errors lie: between its labels, or against the background.

For each label k, every wrongly labelled voxel is either *confused* (a voxel of k predicted as
the other label, or of the other label predicted as k) or a *boundary* error (k predicted as
background, or background as k). Also prints the Dice of the labels merged (a case where both
masks are empty is skipped, as medseg's metrics do). Used to ask why Hippocampus's posterior
label stays below nnU-Net's published Dice (bench/RESULTS.md).

Usage: python bench/label_confusion.py PRED_DIR REF_DIR   (NIfTI files, matched by name)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medseg.io import read_image
from medseg.metrics import dice


def _counts(reference: np.ndarray, prediction: np.ndarray, k: int, other: int) -> tuple[int, int]:
    """(confused, boundary) voxel counts of label ``k``."""
    ref_k, pred_k = reference == k, prediction == k
    confused = (ref_k & (prediction == other)) | ((reference == other) & pred_k)
    boundary = (ref_k & (prediction == 0)) | ((reference == 0) & pred_k)
    return int(confused.sum()), int(boundary.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", type=Path)
    parser.add_argument("references", type=Path)
    parser.add_argument("--labels", type=int, nargs=2, default=[1, 2])
    args = parser.parse_args()
    files = sorted(args.predictions.glob("*.nii.gz"))
    if not files:
        raise SystemExit(f"{args.predictions}: no .nii.gz predictions")
    first, second = args.labels
    merged, per_label = [], {first: [], second: []}
    errors = {first: np.zeros(2, int), second: np.zeros(2, int)}
    for path in files:
        reference = read_image(args.references / path.name).array[0].astype(np.int64)
        prediction = read_image(path).array[0].astype(np.int64)
        merged.append(dice(reference > 0, prediction > 0))
        for k, other in ((first, second), (second, first)):
            per_label[k].append(dice(reference == k, prediction == k))
            errors[k] += _counts(reference, prediction, k, other)
    print(f"{len(files)} cases; Dice of the labels merged: {np.nanmean(merged):.4f}")
    for k in (first, second):
        confused, boundary = errors[k]
        share = 100 * confused / max(confused + boundary, 1)
        print(
            f"label {k}: Dice {np.nanmean(per_label[k]):.4f}; wrong voxels {confused + boundary}: "
            f"{confused} against the other label ({share:.0f} %), {boundary} against the background"
        )


if __name__ == "__main__":
    main()
