"""Registration results as files that ITK, SimpleITK, ANTs and Slicer read.

ITK stores transforms in LPS world coordinates and, like medseg, as fixed-to-moving point maps
(the pull-back transform that resampling uses); medseg works in RAS+. A point converts with
``FLIP = diag(-1, -1, 1)`` both ways, an affine as ``A_lps = FLIP @ A_ras @ FLIP`` and a
displacement vector by negating its x and y components.

- ``affine.txt`` / ``affine.tfm``: ITK's text transform format, one
  ``AffineTransform_double_3_3`` (12 parameters: the 3x3 matrix row by row, then the
  translation; the centre, ``FixedParameters``, is written as 0 0 0).
- ``displacement.nii.gz``: the total displacement ``T(x) - x`` on the fixed grid, LPS mm,
  shape ``(X, Y, Z, 1, 3)``, intent ``NIFTI_INTENT_VECTOR`` (1007): what ANTs writes and ITK
  reads as a displacement field without converting its vectors.
- ``jacobian.nii.gz``: a scalar float32 image on the fixed grid.
"""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.errors import ImageReadError, ImageWriteError, MedsegError, located
from medseg.io import write_image
from medseg.io.atomic import atomic_path, write_text_atomic
from medseg.io.image import Image
from medseg.io.limits import check_input_file
from medseg.io.nifti import read_nifti
from medseg.register.transforms import Transform

#: RAS <-> LPS (its own inverse).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: The ITK transform types stored as a 3x3 matrix and a translation (read; the first is written).
MATRIX_TRANSFORMS = (
    "AffineTransform_double_3_3",
    "AffineTransform_float_3_3",
    "MatrixOffsetTransformBase_double_3_3",
    "MatrixOffsetTransformBase_float_3_3",
)
NIFTI_INTENT_VECTOR = 1007
# NIfTI's own displacement intent; its vectors are RAS by the standard (ITK converts them).
NIFTI_INTENT_DISPVECT = 1006
# An affine text transform is a few hundred bytes; anything this large is not one.
MAX_TRANSFORM_TEXT_BYTES = 2**20


class TransformFileError(MedsegError):
    """A transform file is missing, malformed or holds a transform medseg cannot use, or a
    transform cannot be written as one."""


def write_affine_text(affine: np.ndarray, path: str | Path) -> None:
    """Write a RAS+ fixed-to-moving affine as an ITK text transform (``.txt`` or ``.tfm``).

    ``sitk.ReadTransform(path)`` then maps an LPS fixed point ``p`` to
    ``FLIP @ affine @ FLIP @ p``, the same point as medseg in LPS; ``antsApplyTransforms -t
    path`` resamples a moving image on a fixed grid like `warp_image`. Written atomically.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "affine.txt"
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = [10.0, 0.0, 0.0]  # 10 mm towards the right (RAS x)
    >>> write_affine_text(shift, path)
    >>> print(path.read_text().splitlines()[3])  # LPS: -10 mm along x
    Parameters: 1.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 1.0 -10.0 0.0 0.0
    >>> np.array_equal(read_affine_text(path), shift)
    True
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise TransformFileError(located(path, f"an affine is 4x4, got shape {affine.shape}"))
    if not np.all(np.isfinite(affine)):
        raise TransformFileError(located(path, "the affine holds NaN or infinite values"))
    if not np.allclose(affine[3], [0, 0, 0, 1]):
        raise TransformFileError(located(path, "an affine's last row must be 0 0 0 1"))
    lps = RAS_TO_LPS @ affine @ RAS_TO_LPS
    parameters = [*lps[:3, :3].ravel(), *lps[:3, 3]]
    text = (
        "#Insight Transform File V1.0\n"
        "#Transform 0\n"
        f"Transform: {MATRIX_TRANSFORMS[0]}\n"
        f"Parameters: {' '.join(_number(v) for v in parameters)}\n"
        "FixedParameters: 0 0 0\n"
    )
    write_text_atomic(path, text)


def read_affine_text(path: str | Path) -> np.ndarray:
    """Read an ITK text transform holding one affine; return it as a RAS+ 4x4 matrix.

    Accepts ``AffineTransform`` and ``MatrixOffsetTransformBase`` (double or float) with any
    centre, as written by ITK, SimpleITK, ANTs (``.txt``) and `write_affine_text`. ANTs'
    binary ``.mat`` files are not text: convert them with ``ConvertTransformFile 3 in.mat
    out.txt``.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "affine.tfm"
    >>> write_affine_text(np.diag([2.0, 1.0, 1.0, 1.0]), path)
    >>> read_affine_text(path).diagonal().tolist()
    [2.0, 1.0, 1.0, 1.0]
    """
    path = Path(path)
    try:
        if check_input_file(path).stat().st_size > MAX_TRANSFORM_TEXT_BYTES:
            raise TransformFileError(located(path, "too large for a text transform file"))
        text = path.read_text(encoding="utf-8")
    except ImageReadError as exc:
        raise TransformFileError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TransformFileError(located(path, f"not a readable text file ({exc})")) from None
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise TransformFileError(located(path, f"unexpected line {line[:60]!r}"))
        fields.setdefault(key.strip(), []).append(value.strip())
    kinds = fields.get("Transform", [])
    if len(kinds) != 1:
        raise TransformFileError(
            located(path, f"expected one ITK transform, found {len(kinds)}")
            if kinds
            else located(path, "not an ITK transform file (no 'Transform:' line)")
        )
    if kinds[0] not in MATRIX_TRANSFORMS:
        raise TransformFileError(
            located(
                path, f"{kinds[0]} is not a 3D affine transform ({', '.join(MATRIX_TRANSFORMS)})"
            )
        )
    parameters = _numbers(path, fields, "Parameters", 12)
    centre = _numbers(path, fields, "FixedParameters", 3)
    lps = np.eye(4)
    lps[:3, :3] = parameters[:9].reshape(3, 3)
    # ITK: T(p) = M (p - c) + c + t
    lps[:3, 3] = parameters[9:] + centre - lps[:3, :3] @ centre
    return RAS_TO_LPS @ lps @ RAS_TO_LPS


def write_displacement(
    transform: Transform | np.ndarray, fixed_grid: Image, path: str | Path
) -> None:
    """Write a whole transform as an ITK/ANTs displacement field on the fixed grid.

    Parameters
    ----------
    transform
        A `Transform` (its total displacement ``T(x) - x`` on the fixed grid is written, the
        affine included), or that total displacement itself, ``(3, X, Y, Z)`` RAS+ mm.
    fixed_grid
        The grid (shape and affine) of the field.
    path
        A ``.nii.gz`` or ``.nii`` file: shape ``(X, Y, Z, 1, 3)``, float32, LPS mm (the x and y
        components negated), intent vector (1007), affine = ``fixed_grid.affine``.

    Examples
    --------
    >>> import tempfile
    >>> fixed = Image(np.zeros((1, 2, 2, 2)), np.eye(4))
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = [1.0, 0.0, 0.0]  # 1 mm towards the right
    >>> path = Path(tempfile.mkdtemp()) / "displacement.nii.gz"
    >>> write_displacement(Transform(shift), fixed, path)
    >>> nib.load(path).get_fdata()[0, 0, 0, 0].tolist()  # LPS: 1 mm right is -1 along x
    [-1.0, 0.0, 0.0]
    """
    if fixed_grid.ndim != 3:
        raise ImageWriteError(located(path, "a displacement field needs a 3D fixed grid"))
    shape = fixed_grid.spatial_shape
    if isinstance(transform, Transform):
        total = transform.total_displacement(fixed_grid.affine, shape)
    else:
        total = np.asarray(transform)
        if total.shape != (3, *shape):
            raise ImageWriteError(
                located(path, f"displacement shape {total.shape} is not (3, *{shape})")
            )
    data = np.empty((*shape, 1, 3), dtype=np.float32)
    for component, sign in enumerate((-1.0, -1.0, 1.0)):  # RAS -> LPS
        data[:, :, :, 0, component] = sign * total[component] + 0.0  # + 0.0: no -0.0 stored
    if not np.all(np.isfinite(data)):
        raise ImageWriteError(located(path, "the displacement holds NaN or infinite values"))
    nii = nib.Nifti1Image(data, fixed_grid.affine)
    nii.set_qform(fixed_grid.affine, code=1)
    nii.set_sform(fixed_grid.affine, code=1)
    nii.header.set_xyzt_units("mm", "sec")
    nii.header.set_intent("vector")
    with atomic_path(path) as tmp:
        nib.save(nii, str(tmp))


def read_displacement(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a displacement field written by `write_displacement`, ITK or ANTs.

    Vectors are taken as LPS mm (ITK's convention) unless the file's intent is NIfTI's
    displacement code (1006), whose vectors are RAS.

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        The field ``(3, X, Y, Z)`` float32 in RAS+ mm, and its grid's voxel-to-world affine.
        ``Transform(displacement=field, grid_affine=affine)`` is then the transform on that grid.

    Examples
    --------
    >>> import tempfile
    >>> fixed = Image(np.zeros((1, 2, 2, 2)), np.eye(4))
    >>> path = Path(tempfile.mkdtemp()) / "displacement.nii.gz"
    >>> write_displacement(np.ones((3, 2, 2, 2)), fixed, path)
    >>> field, affine = read_displacement(path)
    >>> field[:, 0, 0, 0].tolist(), affine.shape
    ([1.0, 1.0, 1.0], (4, 4))
    """
    image = read_nifti(path)
    if image.ndim != 3 or image.channels != 3:
        shape = (*image.spatial_shape, image.channels)
        raise ImageReadError(
            located(path, f"shape {shape} is not a 3D displacement field (X, Y, Z, 1, 3)")
        )
    intent = int(nib.load(str(path)).header["intent_code"])
    field, affine = image.array.astype(np.float32), image.affine
    if intent != NIFTI_INTENT_DISPVECT:
        field[:2] *= -1.0  # LPS -> RAS
    return np.ascontiguousarray(field), affine


def write_jacobian(jacobian: np.ndarray, fixed_grid: Image, path: str | Path) -> None:
    """Write Jacobian determinants ``(X, Y, Z)`` as a float32 scalar image on the fixed grid.

    Examples
    --------
    >>> import tempfile
    >>> from medseg.io import read_image
    >>> fixed = Image(np.zeros((1, 2, 2, 2)), np.eye(4))
    >>> path = Path(tempfile.mkdtemp()) / "jacobian.nii.gz"
    >>> write_jacobian(np.ones((2, 2, 2)), fixed, path)
    >>> str(read_image(path).array.dtype)
    'float32'
    """
    jacobian = np.asarray(jacobian)
    if jacobian.shape != fixed_grid.spatial_shape:
        raise ImageWriteError(
            located(path, f"Jacobian shape {jacobian.shape} is not {fixed_grid.spatial_shape}")
        )
    write_image(Image(jacobian.astype(np.float32)[None], fixed_grid.affine), path)


def _number(value: float) -> str:
    """The shortest text that reads back as the same double ('-0.0' written as '0.0')."""
    value = float(value)
    return repr(value + 0.0) if value != 0 else "0.0"


def _numbers(path: Path, fields: dict[str, list[str]], key: str, count: int) -> np.ndarray:
    values = fields.get(key, [])
    if len(values) != 1:
        raise TransformFileError(located(path, f"expected one '{key}:' line, found {len(values)}"))
    try:
        numbers = [float(v) for v in values[0].split()]
    except ValueError:
        raise TransformFileError(
            located(path, f"'{key}:' holds something other than numbers")
        ) from None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        raise TransformFileError(
            located(path, f"'{key}:' needs {count} finite numbers, found {values[0][:80]!r}")
        )
    return np.asarray(numbers, dtype=np.float64)
