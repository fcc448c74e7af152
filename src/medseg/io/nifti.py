"""NIfTI (.nii, .nii.gz) reading and writing through nibabel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.errors import ImageReadError, ImageWriteError, MedsegError, located
from medseg.io.atomic import atomic_path
from medseg.io.image import Image
from medseg.io.limits import DEFLATE_MAX_RATIO, check_declared_size, check_input_file


def read_nifti(path: str | Path) -> Image:
    """Read a 2D, 3D or 4D NIfTI file; a 4th axis (MSD multi-modal files) becomes channels.

    RGB24 and RGBA32 voxels become 3 or 4 channels; complex voxels, a singular affine and a
    declared size beyond the voxel limit or the file (`medseg.io.limits`) are refused.

    Examples
    --------
    >>> img = read_nifti("case_0000.nii.gz")  # doctest: +SKIP
    >>> img.array.shape  # (C, X, Y, Z)  # doctest: +SKIP
    """
    path = check_input_file(path)
    try:
        nii = nib.load(str(path))
        _check_declared(path, nii)
        data = np.asanyarray(nii.dataobj)
        affine = np.asarray(nii.affine, dtype=np.float64)
    except MedsegError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel reports bad bytes in many ways
        raise ImageReadError(located(path, f"not a readable NIfTI file ({exc})")) from None
    if data.dtype.names:  # RGB24 / RGBA32 (2D or 3D): one channel per component
        if data.ndim not in (2, 3):
            raise ImageReadError(located(path, f"unsupported {data.ndim}D colour NIfTI"))
        array = np.stack([data[name] for name in data.dtype.names])
    elif data.ndim in (2, 3):
        array = data[None]
    elif data.ndim == 4:
        array = np.moveaxis(data, -1, 0)
    elif data.ndim == 5 and data.shape[3] == 1:
        array = np.moveaxis(data[:, :, :, 0, :], -1, 0)
    else:
        raise ImageReadError(located(path, f"unsupported NIfTI shape {data.shape}"))
    if not np.all(np.isfinite(affine)):
        raise ImageReadError(located(path, "the affine holds NaN or infinite values"))
    spacing = np.linalg.norm(affine[:3, : array.ndim - 1], axis=0)
    if np.any(spacing <= 1e-9):
        raise ImageReadError(located(path, f"voxel spacing {spacing.tolist()} has a zero"))
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageReadError(located(path, "the affine is singular (its axes are not independent)"))
    return Image(np.ascontiguousarray(array), affine)


def write_nifti(image: Image, path: str | Path) -> None:
    """Write ``image`` as NIfTI; one channel gives a 2D/3D file, several a 4D one."""
    path = Path(path)
    array = image.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype == np.int64 and array.size and array.min() >= -(2**31) and array.max() < 2**31:
        array = array.astype(np.int32)  # nibabel refuses int64 by default
    if image.ndim == 2 and image.channels > 1:
        raise ImageWriteError(
            located(
                path,
                "NIfTI cannot hold a 2D multi-channel image; write .tif or one file per channel",
            )
        )
    data = array[0] if image.channels == 1 else np.moveaxis(array, 0, -1)
    try:
        nii = nib.Nifti1Image(np.ascontiguousarray(data), image.affine)
        nii.set_qform(image.affine, code=1)
        nii.set_sform(image.affine, code=1)
        nii.header.set_xyzt_units("mm", "sec")
        with atomic_path(path) as tmp:
            nib.save(nii, str(tmp))
    except (nib.spatialimages.HeaderDataError, ValueError) as exc:
        raise ImageWriteError(located(path, f"cannot write NIfTI ({exc})")) from None


def _check_declared(path: Path, nii: nib.spatialimages.SpatialImage) -> None:
    """Refuse complex voxels and a declared size the voxel limit or the file cannot hold, from
    the header alone (nibabel would allocate the declared array before finding out)."""
    dtype = nii.header.get_data_dtype()
    if dtype.kind == "c":
        raise ImageReadError(
            located(path, f"complex voxels ({dtype}) are not supported: store magnitude or parts")
        )
    if dtype.kind not in "biuf" and not dtype.names:
        raise ImageReadError(located(path, f"unsupported voxel type {dtype}"))
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        check_declared_size(path, nii.shape, dtype.itemsize, size, DEFLATE_MAX_RATIO)
    else:
        offset = int(getattr(nii.dataobj, "offset", 0))
        check_declared_size(path, nii.shape, dtype.itemsize, max(size - offset, 0))
