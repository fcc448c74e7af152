"""2D raster images: PNG, TIFF and JPEG, grey or RGB.

The array is ``(C, rows, columns)``; rows are the first spatial axis. These formats carry no
usable geometry, so the affine is the identity (1 mm pixels) unless the caller supplies one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.atomic import atomic_path
from medseg.io.image import Image, spacing_affine

TIFF_SUFFIXES = (".tif", ".tiff")


def _to_channels_first(data: np.ndarray, path: Path) -> np.ndarray:
    if data.ndim == 2:
        return data[None]
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        return np.moveaxis(data[..., :3], -1, 0)
    raise ImageReadError(located(path, f"unsupported 2D image shape {data.shape}"))


def read_raster(path: str | Path) -> Image:
    """Read a PNG, TIFF or JPEG as a 2D image; RGB becomes 3 channels, alpha is dropped."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(located(path, "file not found"))
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            data = tifffile.imread(path)
        else:
            with PILImage.open(path) as pil:
                pil.load()
                if pil.mode in ("LA", "PA"):
                    pil = pil.convert("L")
                elif pil.mode in ("RGBA", "CMYK", "YCbCr", "HSV"):
                    pil = pil.convert("RGB")
                # Palette ('P') images keep their indices: label maps are often stored so.
                data = np.asarray(pil)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(located(path, f"not a readable image ({exc})")) from None
    if data.dtype == bool:
        data = data.astype(np.uint8)
    return Image(np.ascontiguousarray(_to_channels_first(data, path)), spacing_affine((1.0, 1.0)))


def write_raster(image: Image, path: str | Path) -> None:
    """Write a 2D image with 1 or 3 channels as PNG, TIFF or JPEG.

    PNG and JPEG need integer data (8 bit, or 16 bit grey for PNG); TIFF takes any dtype.
    """
    path = Path(path)
    if image.ndim != 2:
        raise ImageWriteError(located(path, f"a {image.ndim}D image cannot be written as 2D"))
    if image.channels not in (1, 3):
        raise ImageWriteError(located(path, f"{image.channels} channels: expected 1 or 3"))
    array = image.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    data = array[0] if image.channels == 1 else np.moveaxis(array, 0, -1)
    data = np.ascontiguousarray(data)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in TIFF_SUFFIXES:
            tifffile.imwrite(tmp, data)
            return
        if data.dtype == np.uint8 or (data.dtype == np.uint16 and image.channels == 1):
            PILImage.fromarray(data).save(tmp)
            return
        if np.issubdtype(data.dtype, np.integer) and data.min() >= 0 and data.max() <= 255:
            PILImage.fromarray(data.astype(np.uint8)).save(tmp)
            return
        raise ImageWriteError(
            located(path, f"{data.dtype} data does not fit this format; use .tif or .nii.gz")
        )
