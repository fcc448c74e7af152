"""Registration fixtures: the MNI template at 2 mm with grey/white-matter labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from medseg.io import Image, read_image


@pytest.fixture(scope="session")
def mni_2mm(mni_dir: Path) -> tuple[Image, Image]:
    """T1 (2 mm, 99x117x95) and labels (1 grey matter, 2 white matter: probability > 50 %)."""
    t1 = read_image(mni_dir / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")

    def half(name: str) -> np.ndarray:
        data = read_image(mni_dir / name).array[0] if name else t1.array[0]
        return ndimage.zoom(data.astype(np.float32), 0.5, order=1)

    labels = np.zeros(half("").shape, np.uint8)
    labels[half("mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz") > 128] = 1
    labels[half("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz") > 128] = 2
    affine = t1.affine.copy()
    affine[:3, :3] *= 2
    affine[:3, 3] += t1.affine[:3, :3] @ np.full(3, 0.5)  # 2 mm voxels over the same extent
    return Image(half("")[None], affine), Image(labels[None], affine)
