"""Registration results as files that ITK, SimpleITK, ANTs and Slicer read.

ITK stores transforms in LPS world coordinates and, like medseg, as fixed-to-moving point maps
(the pull-back transform that resampling uses); medseg works in RAS+. A point converts with
``FLIP = diag(-1, -1, 1)`` both ways, an affine as ``A_lps = FLIP @ A_ras @ FLIP`` and a
displacement vector by negating its x and y components.

- ``affine.txt`` / ``affine.tfm`` / ``affine.mat``: one ``AffineTransform_double_3_3``,
  written by SimpleITK (text for ``.txt``/``.tfm``, ANTs' MATLAB format for ``.mat``; the
  centre, ``FixedParameters``, is 0 0 0); read back by medseg's strict text parser or, for
  ``.mat``, by SimpleITK.
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
import SimpleITK as sitk

from medseg.errors import ImageReadError, ImageWriteError, MedsegError, located
from medseg.io import write_image
from medseg.io.atomic import atomic_path
from medseg.io.image import Image
from medseg.io.limits import check_input_file
from medseg.io.nifti import read_nifti
from medseg.register.transforms import Transform

#: RAS <-> LPS (its own inverse).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: The affine transform files read and written: ITK text, MATLAB (ANTs).
TRANSFORM_SUFFIXES = (".txt", ".tfm", ".mat")
#: The ITK text transform types stored as a 3x3 matrix and a translation.
MATRIX_TRANSFORMS = (
    "AffineTransform_double_3_3",
    "AffineTransform_float_3_3",
    "MatrixOffsetTransformBase_double_3_3",
    "MatrixOffsetTransformBase_float_3_3",
)
NIFTI_INTENT_VECTOR = 1007
# NIfTI's own displacement intent; its vectors are RAS by the standard (ITK converts them).
NIFTI_INTENT_DISPVECT = 1006
# An affine transform file is a few hundred bytes; anything this large is not one.
MAX_TRANSFORM_TEXT_BYTES = 2**20


class TransformFileError(MedsegError):
    """A transform file is missing, malformed or holds a transform medseg cannot use, or a
    transform cannot be written as one."""


def write_affine_text(affine: np.ndarray, path: str | Path) -> None:
    """Write a RAS+ fixed-to-moving affine as an ITK transform file by SimpleITK: ITK's
    text format for ``.txt``/``.tfm``, the MATLAB format ANTs writes for ``.mat``.

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
    Parameters: 1 0 0 0 1 0 0 0 1 -10 0 0
    >>> np.array_equal(read_affine_text(path), shift)
    True
    """
    affine = np.asarray(affine, dtype=np.float64)
    if Path(path).suffix.lower() not in TRANSFORM_SUFFIXES:
        raise TransformFileError(located(path, f"write a {'/'.join(TRANSFORM_SUFFIXES)} file"))
    if affine.shape != (4, 4):
        raise TransformFileError(located(path, f"an affine is 4x4, got shape {affine.shape}"))
    if not np.all(np.isfinite(affine)):
        raise TransformFileError(located(path, "the affine holds NaN or infinite values"))
    if not np.allclose(affine[3], [0, 0, 0, 1]):
        raise TransformFileError(located(path, "an affine's last row must be 0 0 0 1"))
    lps = RAS_TO_LPS @ affine @ RAS_TO_LPS + 0.0  # + 0.0: no negative zeros in the file
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    with atomic_path(path) as tmp:
        try:
            sitk.WriteTransform(transform, str(tmp))
        except RuntimeError as exc:
            raise TransformFileError(located(path, _itk_message(exc))) from None


def read_affine_text(path: str | Path) -> np.ndarray:
    """Read an ITK transform file holding one affine; return it as a RAS+ 4x4 matrix.

    Text files (``.txt``, ``.tfm``: ``AffineTransform`` or ``MatrixOffsetTransformBase``,
    double or float, any centre, as ITK, SimpleITK, ANTs and `write_affine_text` write them)
    are parsed by medseg, strictly; MATLAB files (``.mat``, ANTs' ``0GenericAffine.mat``) are
    read by SimpleITK and may hold any linear transform (affine, rigid, similarity, versor,
    Euler, translation), alone or as the one member of a composite transform.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "affine.tfm"
    >>> write_affine_text(np.diag([2.0, 1.0, 1.0, 1.0]), path)
    >>> read_affine_text(path).diagonal().tolist()
    [2.0, 1.0, 1.0, 1.0]
    """
    path = Path(path)
    if path.suffix.lower() not in TRANSFORM_SUFFIXES:
        raise TransformFileError(
            located(path, f"not an ITK transform file ({', '.join(TRANSFORM_SUFFIXES)})")
        )
    if path.suffix.lower() != ".mat":
        return RAS_TO_LPS @ _read_text_transform(path) @ RAS_TO_LPS
    try:
        if check_input_file(path).stat().st_size > MAX_TRANSFORM_TEXT_BYTES:
            raise TransformFileError(located(path, "too large for an affine transform file"))
        transform = sitk.ReadTransform(str(path)).Downcast()
    except ImageReadError as exc:
        raise TransformFileError(str(exc)) from None
    except RuntimeError as exc:
        raise TransformFileError(located(path, _itk_message(exc))) from None
    if isinstance(transform, sitk.CompositeTransform):
        if transform.GetNumberOfTransforms() != 1:
            count = transform.GetNumberOfTransforms()
            raise TransformFileError(located(path, f"expected one ITK transform, found {count}"))
        transform = transform.GetNthTransform(0).Downcast()
    return RAS_TO_LPS @ _lps_matrix(path, transform) @ RAS_TO_LPS


def _read_text_transform(path: Path) -> np.ndarray:
    """The LPS matrix of an ITK text transform, parsed strictly: one matrix-offset transform,
    every field present with the right count of finite numbers. (SimpleITK's reader takes a
    file without a ``Parameters:`` or ``FixedParameters:`` line as the identity, silently:
    tests/register/test_itk_files.py.)"""
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
    return lps


def _lps_matrix(path: Path, transform: sitk.Transform) -> np.ndarray:
    """The 4x4 LPS matrix of a 3D matrix-offset or translation transform."""
    if transform.GetDimension() != 3:
        raise TransformFileError(located(path, f"a {transform.GetDimension()}D transform"))
    lps = np.eye(4)
    if isinstance(transform, sitk.TranslationTransform):
        lps[:3, 3] = transform.GetOffset()
    elif hasattr(transform, "GetMatrix") and hasattr(transform, "GetCenter"):
        matrix = np.asarray(transform.GetMatrix(), np.float64).reshape(3, 3)
        centre = np.asarray(transform.GetCenter(), np.float64)
        # ITK: T(p) = M (p - c) + c + t
        lps[:3, :3] = matrix
        lps[:3, 3] = np.asarray(transform.GetTranslation()) + centre - matrix @ centre
    else:
        raise TransformFileError(
            located(path, f"{transform.GetName()} is not a linear (affine) transform")
        )
    if not np.all(np.isfinite(lps)):
        raise TransformFileError(located(path, "the transform holds NaN or infinite values"))
    return lps


def _itk_message(exc: RuntimeError) -> str:
    """The last line of an ITK exception (its own message, without the source location)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    message = lines[-1] if lines else "unreadable"
    return message.split(": ", 1)[-1] if message.startswith("ITK ERROR") else message


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
