"""Raster images: PNG, TIFF and JPEG, grey or RGB; TIFF also as a multi-page stack.

The array is ``(C, rows, columns)``, or ``(C, rows, columns, pages)`` for a TIFF stack; rows
are the first spatial axis. These formats carry no usable geometry, so the affine is the
identity (1 mm pixels) unless the caller supplies one.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image as PILImage

from medseg.errors import ImageReadError, ImageWriteError, MedsegError, located
from medseg.io.atomic import atomic_path
from medseg.io.image import Image, spacing_affine
from medseg.io.limits import DEFLATE_MAX_RATIO, check_declared_size, check_input_file

TIFF_SUFFIXES = (".tif", ".tiff")
# The format PIL must find in the bytes of a file with each suffix (its content decides, not
# its name: JPEG bytes in a .png label map would be lossy labels).
PIL_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
#: Pages a TIFF may chain before it is refused (a 3D stack has one per slice).
MAX_TIFF_PAGES = 100_000
#: Classic TIFF (42) and BigTIFF (43): the tag-count format, bytes per tag, offset format.
TIFF_LAYOUTS = {42: ("H", 12, "I"), 43: ("Q", 20, "Q")}


def _to_channels_first(data: np.ndarray, path: Path) -> np.ndarray:
    if data.ndim == 2:
        return data[None]
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        return np.moveaxis(data[..., :3], -1, 0)
    raise ImageReadError(located(path, f"unsupported 2D image shape {data.shape}"))


def _tiff_stack(path: Path) -> np.ndarray:
    """A TIFF's pixels channel-first: ``(C, rows, columns)`` or ``(C, rows, columns, pages)``.

    tifffile names the axes of each series (Y rows, X columns, S samples; any other letter is a
    page axis: Q, I, Z, C, T ...). Pages written one by one form one series each; they are
    stacked when they agree in shape and type.
    """
    _check_page_chain(path)
    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if not series:
            raise ValueError("no images in the file")
        first = series[0]
        for number, other in enumerate(series[1:], start=2):
            if (other.shape, other.dtype, other.axes) != (first.shape, first.dtype, first.axes):
                raise ImageReadError(
                    located(
                        path,
                        f"page {number} is {other.shape} {other.dtype}, page 1 is {first.shape} "
                        f"{first.dtype}: pages of a stack must agree",
                    )
                )
        shape = (len(series), *first.shape)
        check_declared_size(path, shape, first.dtype.itemsize, path.stat().st_size, math.inf)
        if len(series) > 1:
            data, axes = np.stack([s.asarray() for s in series]), "Q" + first.axes
        else:
            data, axes = first.asarray(), first.axes
    keep = [k for k, (n, axis) in enumerate(zip(data.shape, axes)) if n > 1 or axis in "YX"]
    data = data.reshape([data.shape[k] for k in keep])
    axes = "".join(axes[k] for k in keep)
    if "S" in axes:
        data, axes = np.moveaxis(data, axes.index("S"), -1), axes.replace("S", "") + "S"
    spatial = axes.replace("S", "")
    if not spatial.endswith("YX") or len(spatial) > 3:
        raise ImageReadError(located(path, f"unsupported TIFF layout {axes} {data.shape}"))
    if axes.endswith("S") and data.shape[-1] not in (3, 4):
        raise ImageReadError(located(path, f"{data.shape[-1]} samples per pixel: expected 3 or 4"))
    data = data[..., :3] if axes.endswith("S") else data[..., None]  # RGB(A) -> RGB
    data = np.moveaxis(data, -1, 0)  # (C, [pages,] rows, columns)
    return np.moveaxis(data, 1, -1) if len(spatial) == 3 else data


def _check_page_chain(path: Path) -> None:
    """Walk a TIFF's chain of pages (image file directories) before tifffile does, and refuse
    one that loops or runs past `MAX_TIFF_PAGES`: tifffile can spin on a circular chain (found
    by bench/fuzz.py). Anything else malformed is left for tifffile to report."""
    size = path.stat().st_size
    with open(path, "rb") as stream:
        head = stream.read(16)
        order = {b"II": "<", b"MM": ">"}.get(head[:2])
        if order is None or len(head) < 16:
            return
        version = struct.unpack(order + "H", head[2:4])[0]
        if version not in TIFF_LAYOUTS:
            return
        count_format, tag_bytes, offset_format = TIFF_LAYOUTS[version]
        count_field = struct.Struct(order + count_format)
        offset_field = struct.Struct(order + offset_format)
        offset = offset_field.unpack(head[4:8] if version == 42 else head[8:16])[0]
        seen: set[int] = set()
        while 0 < offset < size:
            if offset in seen:
                raise ImageReadError(located(path, "its pages form a loop: a corrupt TIFF"))
            if len(seen) >= MAX_TIFF_PAGES:
                raise ImageReadError(located(path, f"more than {MAX_TIFF_PAGES} pages"))
            seen.add(offset)
            stream.seek(offset)
            count = stream.read(count_field.size)
            if len(count) < count_field.size:
                return
            stream.seek(offset + count_field.size + tag_bytes * count_field.unpack(count)[0])
            following = stream.read(offset_field.size)
            if len(following) < offset_field.size:
                return
            offset = offset_field.unpack(following)[0]


def _pil_pixels(path: Path) -> np.ndarray:
    """A PNG's or JPEG's pixels channel-first, after checking that the bytes are of the
    suffix's format and that the declared size fits the voxel limit and the file."""
    with PILImage.open(path) as pil:
        expected = PIL_FORMATS.get(path.suffix.lower())
        if expected and pil.format != expected:
            raise ImageReadError(located(path, f"holds {pil.format} data, not {expected}"))
        shape = (pil.width, pil.height, len(pil.getbands()))
        # 1-bit PNGs pack 8 pixels in a byte before deflate
        expansion = 8 * DEFLATE_MAX_RATIO if pil.format == "PNG" else math.inf
        check_declared_size(path, shape, 1, path.stat().st_size, expansion)
        pil.load()
        if pil.mode in ("LA", "PA"):
            pil = pil.convert("L")
        elif pil.mode in ("RGBA", "CMYK", "YCbCr", "HSV"):
            pil = pil.convert("RGB")
        # Palette ('P') images keep their indices: label maps are often stored so.
        return _to_channels_first(np.asarray(pil), path)


def read_raster(path: str | Path) -> Image:
    """Read a PNG, TIFF or JPEG as a 2D image; RGB becomes 3 channels, alpha is dropped.

    A multi-page TIFF becomes a 3D image ``(C, rows, columns, pages)`` with 1 mm voxels.

    Examples
    --------
    >>> import tempfile
    >>> stack = Path(tempfile.mkdtemp()) / "stack.tif"
    >>> tifffile.imwrite(stack, np.zeros((5, 6, 7), np.uint16))  # 5 pages of 6 x 7
    >>> read_raster(stack).array.shape
    (1, 6, 7, 5)
    """
    path = check_input_file(path)
    try:
        tiff = path.suffix.lower() in TIFF_SUFFIXES
        data = _tiff_stack(path) if tiff else _pil_pixels(path)
    except MedsegError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise ImageReadError(located(path, f"refused as a decompression bomb ({exc})")) from None
    except Exception as exc:  # noqa: BLE001 - Pillow and tifffile report bad bytes in many ways
        raise ImageReadError(located(path, f"not a readable image ({exc})")) from None
    if data.dtype == bool:
        data = data.astype(np.uint8)
    spacing = (1.0,) * (data.ndim - 1)
    return Image(np.ascontiguousarray(data), spacing_affine(spacing))


def write_raster(image: Image, path: str | Path) -> None:
    """Write a 2D image with 1 or 3 channels as PNG, TIFF or JPEG; a 3D one as a TIFF stack.

    PNG and JPEG need integer data (8 bit, or 16 bit grey for PNG); TIFF takes any dtype. A
    3D image ``(C, rows, columns, pages)`` becomes one TIFF page per index of its last axis.
    """
    path = Path(path)
    tiff = path.suffix.lower() in TIFF_SUFFIXES
    if image.ndim != 2 and not tiff:
        raise ImageWriteError(located(path, f"a {image.ndim}D image cannot be written as 2D"))
    if image.channels not in (1, 3):
        raise ImageWriteError(located(path, f"{image.channels} channels: expected 1 or 3"))
    array = image.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if image.ndim == 3:
        array = np.moveaxis(array, -1, 1)  # (C, pages, rows, columns)
    data = array[0] if image.channels == 1 else np.moveaxis(array, 0, -1)
    data = np.ascontiguousarray(data)
    with atomic_path(path) as tmp:
        if tiff:
            # Said explicitly: tifffile would take 3 grey pages for one planar RGB image.
            tifffile.imwrite(tmp, data, photometric="rgb" if image.channels == 3 else "minisblack")
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
