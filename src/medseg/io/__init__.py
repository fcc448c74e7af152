"""Reading and writing images with their geometry.

``read_image`` and ``write_image`` choose the format from the file name; ``read_image`` also
reads a folder holding one DICOM series, and a single DICOM file.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.atomic import atomic_path, write_text_atomic
from medseg.io.dicom import has_dicom_preamble, is_dicom_folder, read_dicom_file, read_dicom_series
from medseg.io.image import Image, same_grid, spacing_affine
from medseg.io.itk import ITK_SUFFIXES, read_itk, write_itk
from medseg.io.json_file import read_json_file
from medseg.io.nifti import read_nifti, write_nifti
from medseg.io.raster import read_raster, write_raster

NIFTI_SUFFIXES = (".nii.gz", ".nii")
RASTER_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
# Read and written alike. DICOM (.dcm) is read only, and a single file of a series is not an
# image of its own, so it is not listed here (nor by `image_files`).
SUPPORTED_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES + RASTER_SUFFIXES
DICOM_SUFFIXES = (".dcm",)

__all__ = [
    "Image",
    "SUPPORTED_SUFFIXES",
    "atomic_path",
    "image_files",
    "image_suffix",
    "is_dicom_folder",
    "read_dicom_file",
    "read_dicom_series",
    "read_image",
    "read_json_file",
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
    """Read any supported image file, or a DICOM series folder, into an `Image`.

    A folder must hold exactly one DICOM series (see `read_dicom_series` to choose one of
    several). A DICOM file is recognised by its ``.dcm`` suffix or by its ``DICM`` marker.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> read_image(get_testdata_file("MR_small.dcm")).spatial_shape
    (64, 64, 1)
    """
    path = Path(path)
    if path.is_dir():
        if is_dicom_folder(path):
            return read_dicom_series(path)
        raise ImageReadError(located(path, "a folder without DICOM files is not an image"))
    suffix = image_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(path)
    if suffix in ITK_SUFFIXES:
        return read_itk(path)
    if suffix in RASTER_SUFFIXES:
        return read_raster(path)
    if path.name.lower().endswith(DICOM_SUFFIXES) or has_dicom_preamble(path):
        return read_dicom_file(path)
    if not path.exists():
        raise ImageReadError(located(path, "file not found"))
    raise ImageReadError(
        located(
            path,
            "unsupported file type (expected .nii.gz, .nii, .nrrd, .nhdr, .mha, .mhd, .png, "
            ".tif, .jpg, .dcm or a DICOM series folder)",
        )
    )


def write_image(image: Image, path: str | Path) -> None:
    """Write an `Image` in the format given by the file name, atomically."""
    suffix = image_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        write_nifti(image, path)
    elif suffix in ITK_SUFFIXES:
        write_itk(image, path)
    elif suffix in RASTER_SUFFIXES:
        write_raster(image, path)
    else:
        raise ImageWriteError(located(path, "unsupported file type for writing"))
