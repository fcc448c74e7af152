"""NRRD (.nrrd, .nhdr) and MetaImage (.mha, .mhd) reading and writing through SimpleITK.

SimpleITK arrays are ``(z, y, x)`` and its geometry is LPS: an `Image` is ``(C, x, y, z)`` in
RAS+, so the axes are reversed and the first two world axes negated. Multi-component pixels (and
the 4th axis of a 4D file) become channels. A 2D file gives a 2D image whose affine has the
unused slice direction (0, 0, 1) in its third column, like a 2D NIfTI file.

``.nhdr`` and ``.mhd`` headers name a separate data file; both are written into a hidden folder
beside the target and moved into place data file first, so the header never points at a
half-written file.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.atomic import atomic_path
from medseg.io.image import Image
from medseg.io.limits import (
    DEFLATE_MAX_RATIO,
    check_declared_size,
    check_input_file,
    check_named_file,
)

ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
DETACHED_HEADER_SUFFIXES = (".nhdr", ".mhd")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# A 2D image written to a 2D file must lie in the z = 0 plane of its affine (to this, in mm).
PLANE_TOLERANCE = 1e-6
# Header fields checked before SimpleITK reads the file: True where values must be positive.
HEADER_NUMBERS = {
    "elementspacing": True,
    "elementsize": True,
    "spacings": True,
    "offset": False,
    "origin": False,
    "position": False,
    "transformmatrix": False,
    "rotation": False,
    "orientation": False,
    "space origin": False,
    "space directions": False,
}
HEADER_BYTES = 65536
DATA_FILE_KEYS = ("data file", "datafile", "elementdatafile")
# How many times its stored size a NRRD encoding can expand; bzip2 has no useful bound (the
# voxel limit decides); text encodings (ascii, text) need a character per value at least.
NRRD_EXPANSION = {
    "raw": 1.0,
    "gzip": DEFLATE_MAX_RATIO,
    "gz": DEFLATE_MAX_RATIO,
    "bzip2": math.inf,
    "bz2": math.inf,
    "hex": 0.5,
}


def read_itk(path: str | Path) -> Image:
    """Read a NRRD or MetaImage file (2D or 3D, scalar or multi-component) into an `Image`.

    Examples
    --------
    >>> image = read_itk("brain1_image.nrrd")  # doctest: +SKIP
    >>> image.array.shape, image.spacing  # doctest: +SKIP
    ((1, 256, 256, 25), (0.94, 0.94, 6.0))
    """
    path = check_input_file(path)
    _check_declared(path, _check_header(path))
    try:
        itk_image = sitk.ReadImage(str(path))
        data = sitk.GetArrayFromImage(itk_image)
    except RuntimeError as exc:
        raise ImageReadError(located(path, f"not a readable image ({_first_line(exc)})")) from None
    dim = itk_image.GetDimension()
    spacing = np.asarray(itk_image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(itk_image.GetOrigin(), dtype=np.float64)
    direction = np.asarray(itk_image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    vector = itk_image.GetNumberOfComponentsPerPixel() > 1
    if dim == 4 and not vector:
        # (t, z, y, x): the 4th axis becomes channels; its spacing and direction are dropped.
        data, dim, vector = np.moveaxis(data, 0, -1), 3, True
        spacing, origin, direction = spacing[:3], origin[:3], direction[:3, :3]
    if dim not in (2, 3):
        raise ImageReadError(located(path, f"unsupported {dim}D image"))
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ImageReadError(located(path, f"zero, negative or invalid spacing {tuple(spacing)}"))
    if not vector:
        data = data[..., None]
    # (z, y, x, C) or (y, x, C) -> (C, x, y, z) or (C, x, y)
    array = np.transpose(data, (dim, *range(dim - 1, -1, -1)))
    affine = np.eye(4)
    affine[:dim, :dim] = direction * spacing
    affine[:dim, 3] = origin
    affine = LPS_TO_RAS @ affine
    if not np.all(np.isfinite(affine)):
        raise ImageReadError(located(path, "the geometry holds NaN or infinite values"))
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageReadError(located(path, "degenerate direction matrix"))
    return Image(np.ascontiguousarray(array), affine)


def write_itk(image: Image, path: str | Path) -> None:
    """Write ``image`` as NRRD or MetaImage (compressed); channels become pixel components.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.nrrd"
    >>> write_itk(Image(np.zeros((1, 4, 5, 6), np.int16), np.diag([-0.5, -0.5, 2.0, 1.0])), target)
    >>> read_itk(target).spacing
    (0.5, 0.5, 2.0)
    """
    path = Path(path)
    array = image.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    dim = image.ndim
    lps = LPS_TO_RAS @ image.affine  # the flip is its own inverse
    if not np.all(np.isfinite(lps)):
        raise ImageWriteError(located(path, "the affine holds NaN or infinite values"))
    if dim == 2 and (
        np.abs(lps[2, :2]).max() > PLANE_TOLERANCE or abs(lps[2, 3]) > PLANE_TOLERANCE
    ):
        raise ImageWriteError(
            located(path, "a 2D image outside the z = 0 plane cannot be stored as 2D; use .nii.gz")
        )
    columns = lps[:dim, :dim]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing == 0) or abs(np.linalg.det(columns)) < 1e-12:
        raise ImageWriteError(located(path, "the affine is degenerate (zero spacing)"))
    # (C, x, y[, z]) -> (z, y, x, C) or (y, x, C)
    data = np.ascontiguousarray(np.transpose(array, (*range(dim, 0, -1), 0)))
    try:
        if image.channels == 1:
            itk_image = sitk.GetImageFromArray(data[..., 0])
        else:
            itk_image = sitk.GetImageFromArray(data, isVector=True)
        itk_image.SetSpacing([float(s) for s in spacing])
        itk_image.SetOrigin([float(o) for o in lps[:dim, 3]])
        itk_image.SetDirection([float(d) for d in (columns / spacing).ravel()])
        with _atomic_target(path) as tmp:
            sitk.WriteImage(itk_image, str(tmp), True)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ImageWriteError(located(path, f"cannot write ({_first_line(exc)})")) from None


@contextlib.contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """Like `atomic_path`, and for detached headers a hidden folder whose files (header and
    data file, named after the target) are moved into place data first."""
    if not path.name.lower().endswith(DETACHED_HEADER_SUFFIXES):
        with atomic_path(path) as tmp:
            yield tmp
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp{os.getpid()}", dir=path.parent))
    try:
        yield folder / path.name
        for written in sorted(folder.iterdir(), key=lambda p: p.name == path.name):
            os.replace(written, path.parent / written.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_header(path: Path) -> dict[str, str]:
    """The header's fields (lower-case names), after refusing what SimpleITK would quietly
    repair: a negative spacing (read as its absolute value with a flipped direction) or a NaN
    offset in a MetaImage header (read as 0)."""
    with open(path, "rb") as stream:
        head = stream.read(HEADER_BYTES).decode("latin-1")
    fields = {}
    for line in head.splitlines():
        if not line.strip():
            break  # the end of a NRRD header
        name, sep, value = line.partition(":" if head.startswith("NRRD") else "=")
        key = name.strip().lower()
        if sep:
            fields.setdefault(key, value.strip())
        if sep and key in HEADER_NUMBERS:
            tokens = value.replace("(", " ").replace(")", " ").replace(",", " ").split()
            try:
                numbers = [float(t) for t in tokens if t.lower() != "none"]
            except ValueError:
                continue  # not numbers: SimpleITK judges
            positive = HEADER_NUMBERS[key]
            if not all(np.isfinite(numbers)) or (positive and min(numbers, default=1) <= 0):
                raise ImageReadError(
                    located(path, f"invalid {name.strip()} in the header: {value.strip()}")
                )
        if key == "elementdatafile":
            break  # the end of a MetaImage header
    return fields


def _data_file(path: Path, fields: dict[str, str]) -> Path:
    """The file that holds the voxels: ``path`` itself, or the one its header names, which
    must be a single regular file inside the header's folder (`check_named_file`)."""
    name = next((fields[key] for key in DATA_FILE_KEYS if key in fields), "LOCAL")
    if name.upper() == "LOCAL":
        return path
    if name.upper().startswith("LIST") or ("%" in name and len(name.split()) > 2):
        raise ImageReadError(
            located(path, "data split over several files (LIST or a pattern) is not supported")
        )
    return check_named_file(path, name)


def _check_declared(path: Path, fields: dict[str, str]) -> None:
    """Check the declared size against the voxel limit and the data file's bytes before
    SimpleITK allocates it."""
    data_file = _data_file(path, fields)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
        pixel = sitk.Image([1, 1], reader.GetPixelID())
        itemsize = sitk.GetArrayViewFromImage(pixel).itemsize
    except RuntimeError as exc:
        raise ImageReadError(located(path, f"not a readable image ({_first_line(exc)})")) from None
    shape = (*reader.GetSize(), reader.GetNumberOfComponents())
    if "compresseddata" in fields:
        compressed = fields["compresseddata"].lower() == "true"
        expansion = DEFLATE_MAX_RATIO if compressed else 1.0
    else:
        expansion = NRRD_EXPANSION.get(fields.get("encoding", "raw").lower(), float(itemsize))
    check_declared_size(path, shape, itemsize, data_file.stat().st_size, expansion)


def _first_line(exc: Exception) -> str:
    """ITK's messages span several lines with source locations; keep the telling one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for k, line in enumerate(lines):
        if "ERROR:" in line:
            message = line.split("ERROR:", 1)[1]
            message = message.split("): ", 1)[1] if "): " in message else message
            if message.endswith(":") and k + 1 < len(lines):
                return lines[-1]  # teem lists its trouble from the outside in
            return message.split(" Refusing to change", 1)[0].strip()
    return lines[-1] if lines else type(exc).__name__
