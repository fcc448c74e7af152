"""Shared by the DICOM output tests: label maps that expose any flip, and a SEG read back."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from medseg.io import Image
from medseg.io.dicom import series_grid

LIVER = {
    "category": ["SCT", "123037004", "Anatomical Structure"],
    "type": ["SCT", "10200004", "Liver"],
}


def asymmetric_labels(image: Image) -> np.ndarray:
    """Two labels no flip, transpose or slice reversal maps onto themselves."""
    _, x, y, z = image.array.shape
    labels = np.zeros((1, x, y, z), np.uint8)
    labels[0, x // 5 : x // 2, y // 6 : y // 2, :] = 1
    labels[0, x // 2 : 3 * x // 4, y // 3 : 2 * y // 3, z // 2 :] = 2
    labels[0, :3, :2, 0] = 2  # one corner of the first slice only
    return labels


def read_back(seg_path: Path, series_folder: Path) -> np.ndarray:
    """The SEG as a label map in medseg's voxel order, by highdicom's own reader."""
    seg = hd.seg.segread(seg_path)
    frames, _ = series_grid(series_folder)
    uids = [pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID for f in frames]
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, combine_segments=True, assert_missing_frames_are_empty=True
    )
    return np.transpose(pixels, (2, 1, 0))  # (slices, rows, columns) -> (X, Y, Z)


def dciodvfy_errors(path: Path) -> list[str]:
    """The errors dicom3tools' DICOM validator reports on ``path`` (skips without it)."""
    import shutil
    import subprocess

    import pytest

    validator = shutil.which("dciodvfy")
    if validator is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools; .ci/run installs it)")
    result = subprocess.run(
        [validator, "-new", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]
