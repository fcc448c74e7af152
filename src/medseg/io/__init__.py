"""Reading and writing images with their geometry.

``read_image`` and ``write_image`` choose the format from the file name.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.atomic import atomic_path, write_text_atomic
from medseg.io.image import Image, same_grid, spacing_affine
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.raster import read_raster, write_raster

NIFTI_SUFFIXES = (".nii.gz", ".nii")
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
SUPPORTED_SUFFIXES = NIFTI_SUFFIXES + RASTER_SUFFIXES

__all__ = [
    "Image",
    "SUPPORTED_SUFFIXES",
    "atomic_path",
    "image_files",
    "image_suffix",
    "read_image",
    "same_grid",
    "spacing_affine",
    "write_image",
    "write_text_atomic",
]


def image_suffix(path: str | Path) -> str | None:
    """The supported image suffix of ``path`` (``.nii.gz``, ``.png``, ...) or None.

    Examples
    --------
    >>> image_suffix("brain_0000.nii.gz")
    '.nii.gz'
    >>> image_suffix("notes.txt") is None
    True
    """
    name = Path(path).name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def image_files(folder: str | Path) -> list[Path]:
    """The supported image files in ``folder``, sorted; hidden files (``.name``) are skipped.

    Examples
    --------
    >>> image_files(Path(__file__).parent)
    []
    """
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and image_suffix(p)
    )


def read_image(path: str | Path) -> Image:
    """Read any supported image file into an `Image` (channel-first array plus affine)."""
    suffix = image_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(path)
    if suffix in RASTER_SUFFIXES:
        return read_raster(path)
    raise ImageReadError(
        located(path, "unsupported file type (expected .nii.gz, .nii, .png, .tif)")
    )


def write_image(image: Image, path: str | Path) -> None:
    """Write an `Image` in the format given by the file name, atomically."""
    suffix = image_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        write_nifti(image, path)
    elif suffix in RASTER_SUFFIXES:
        write_raster(image, path)
    else:
        raise ImageWriteError(located(path, "unsupported file type for writing"))
