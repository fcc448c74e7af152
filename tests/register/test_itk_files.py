"""Result files read by SimpleITK (and so by ITK/ANTs): affine.txt/.tfm, displacement.nii.gz,
jacobian.nii.gz."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medseg.errors import ImageReadError, ImageWriteError, MedsegError
from medseg.io import Image, read_image
from medseg.register.affine_algebra import affine_from_parameters
from medseg.register.itk_files import (
    TransformFileError,
    read_affine_text,
    read_displacement,
    write_affine_text,
    write_displacement,
    write_jacobian,
)
from medseg.register.jacobian import jacobian_determinant
from medseg.register.transforms import Transform
from medseg.register.warp import warp_image

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
SHAPE = (30, 26, 18)
A = affine_from_parameters(
    rotation_radians=(-0.1, 0.05, 0.2),
    translation_mm=(4.0, 1.0, -2.5),
    scale=(0.9, 1.1, 1.0),
    shear=(0.02, -0.01, 0.03),
    centre_mm=(3.0, -4.0, 6.0),
)


def _grid(spacing, seed) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = q * np.asarray(spacing)
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(SHAPE) - 1) / 2.0)
    return affine


FIXED = Image(np.zeros((1, *SHAPE), np.float32), _grid((1.2, 0.8, 1.6), seed=10))
MOVING = Image(
    ndimage.gaussian_filter(np.random.default_rng(11).normal(size=SHAPE), 1.0)[None],
    _grid((1.0, 1.1, 1.5), seed=12),
)


def _to_sitk(image: Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.ascontiguousarray(image.array[0].transpose(2, 1, 0)))
    geometry = FLIP @ image.affine
    spacing = np.linalg.norm(geometry[:3, :3], axis=0)
    out.SetSpacing(spacing.tolist())
    out.SetDirection((geometry[:3, :3] / spacing).ravel().tolist())
    out.SetOrigin(geometry[:3, 3].tolist())
    return out


def _field() -> np.ndarray:
    noise = np.random.default_rng(13).normal(size=(3, *SHAPE))
    field = np.stack([ndimage.gaussian_filter(c, 3.0) for c in noise])
    return 3.0 * field / np.abs(field).max()


# --- affine text -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["affine.txt", "affine.tfm"])
def test_written_affine_maps_points_in_simpleitk_like_apply(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_affine_text(A, path)
    itk = sitk.ReadTransform(str(path))
    points = np.random.default_rng(0).uniform(-50, 50, size=(20, 3))
    ours = Transform(A).apply(points)
    theirs = np.array([itk.TransformPoint((FLIP[:3, :3] @ p).tolist()) for p in points])
    assert np.allclose(theirs @ FLIP[:3, :3], ours, atol=1e-9)


def test_written_affine_resamples_like_warp_image(tmp_path: Path) -> None:
    write_affine_text(A, tmp_path / "affine.tfm")
    itk = sitk.ReadTransform(str(tmp_path / "affine.tfm"))
    theirs = sitk.Resample(_to_sitk(MOVING), _to_sitk(FIXED), itk, sitk.sitkLinear, 0.0)
    theirs = sitk.GetArrayFromImage(theirs).transpose(2, 1, 0)
    ours = warp_image(MOVING, FIXED, Transform(A)).array[0]
    inside = _inside_moving(Transform(A))
    assert inside.mean() > 0.3
    assert np.allclose(ours[inside], theirs[inside], atol=1e-5)


def _inside_moving(transform: Transform) -> np.ndarray:
    """Fixed voxels whose T(x) lies at least one voxel inside the moving grid."""
    points = _homogeneous(transform.map_grid(FIXED.affine, SHAPE))
    moving_index = np.tensordot(np.linalg.inv(MOVING.affine), points, 1)[:3]
    upper = np.reshape(SHAPE, (3, 1, 1, 1)) - 2
    return np.all((moving_index >= 1) & (moving_index <= upper), 0)


def test_affine_text_round_trip_is_exact(tmp_path: Path) -> None:
    for affine in (A, np.eye(4), np.diag([1e-7, 3.0, -2.0, 1.0]) @ A):
        write_affine_text(affine, tmp_path / "affine.txt")
        assert np.array_equal(read_affine_text(tmp_path / "affine.txt"), affine)
    text = (tmp_path / "affine.txt").read_text().splitlines()
    assert text[0] == "#Insight Transform File V1.0"
    assert text[2] == "Transform: AffineTransform_double_3_3"
    assert len(text[3].split()) == 13 and text[4] == "FixedParameters: 0 0 0"


def test_reads_simpleitk_files_with_a_centre(tmp_path: Path) -> None:
    lps = FLIP @ A @ FLIP
    itk = sitk.AffineTransform(3)
    itk.SetCenter((10.0, -20.0, 5.0))
    itk.SetMatrix(lps[:3, :3].ravel().tolist())
    # choose the translation so that the whole map is still A
    centre = np.array([10.0, -20.0, 5.0])
    itk.SetTranslation((lps[:3, 3] - centre + lps[:3, :3] @ centre).tolist())
    sitk.WriteTransform(itk, str(tmp_path / "centred.tfm"))
    assert np.allclose(read_affine_text(tmp_path / "centred.tfm"), A, atol=1e-12)


def test_mat_files_round_trip_and_map_points_like_simpleitk(tmp_path: Path) -> None:
    write_affine_text(A, tmp_path / "affine.mat")
    assert np.array_equal(read_affine_text(tmp_path / "affine.mat"), A)
    # ANTs writes rigid and affine .mat files with a centre: read the whole map
    rigid = sitk.Euler3DTransform((5.0, -3.0, 12.0), 0.1, -0.2, 0.3, (2.0, 4.0, -1.0))
    sitk.WriteTransform(rigid, str(tmp_path / "0GenericAffine.mat"))
    ours = Transform(read_affine_text(tmp_path / "0GenericAffine.mat"))
    points = np.random.default_rng(1).uniform(-50, 50, size=(10, 3))
    theirs = np.array([rigid.TransformPoint((FLIP[:3, :3] @ p).tolist()) for p in points])
    assert np.allclose(theirs @ FLIP[:3, :3], ours.apply(points), atol=1e-9)


def test_simpleitk_reads_a_truncated_text_file_as_the_identity_medseg_refuses_it(
    tmp_path: Path,
) -> None:
    """Why text transforms are parsed by medseg: SimpleITK takes a file that lost its
    FixedParameters line, or both parameter lines, for the identity."""
    head = "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
    no_centre = tmp_path / "no_centre.txt"
    no_centre.write_text(head + "Parameters: 2 0 0 0 1 0 0 0 1 5 6 7\n")
    no_parameters = tmp_path / "no_parameters.txt"
    no_parameters.write_text(head)
    for path in (no_centre, no_parameters):
        assert sitk.ReadTransform(str(path)).GetParameters() == (1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)
    with pytest.raises(TransformFileError, match="no_centre.txt: expected one 'FixedParameters:'"):
        read_affine_text(no_centre)
    with pytest.raises(TransformFileError, match="no_parameters.txt: expected one 'Parameters:'"):
        read_affine_text(no_parameters)


def test_affine_text_refusals(tmp_path: Path) -> None:
    euler = tmp_path / "euler.txt"
    sitk.WriteTransform(sitk.Euler3DTransform(), str(euler))
    with pytest.raises(TransformFileError, match=r"euler.txt: Euler3DTransform_double_3_3 is not"):
        read_affine_text(euler)
    broken = tmp_path / "broken.txt"
    broken.write_text("#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\n")
    with pytest.raises(TransformFileError, match="Parameters"):
        read_affine_text(broken)
    broken.write_text("Transform: AffineTransform_double_3_3\nParameters: 1 2 x\nFixedParameters:")
    with pytest.raises(TransformFileError, match="other than numbers"):
        read_affine_text(broken)
    broken.write_text("hello")
    with pytest.raises(TransformFileError, match="unexpected line"):
        read_affine_text(broken)
    with pytest.raises(TransformFileError, match="file not found"):
        read_affine_text(tmp_path / "missing.txt")
    assert issubclass(TransformFileError, MedsegError)
    with pytest.raises(TransformFileError, match="nan.txt: the affine holds NaN"):
        write_affine_text(np.full((4, 4), np.nan), tmp_path / "nan.txt")
    with pytest.raises(TransformFileError, match="last row"):
        write_affine_text(np.ones((4, 4)), tmp_path / "nan.txt")
    assert not (tmp_path / "nan.txt").exists()
    with pytest.raises(TransformFileError, match=r"affine.h5: not an ITK transform file"):
        read_affine_text(tmp_path / "affine.h5")
    broken.with_suffix(".mat").write_bytes(b"\x00" * 64)
    with pytest.raises(TransformFileError, match="broken.mat: "):
        read_affine_text(broken.with_suffix(".mat"))


# --- displacement field ----------------------------------------------------------------------


def test_written_displacement_resamples_in_simpleitk_like_warp_image(tmp_path: Path) -> None:
    transform = Transform(A, _field(), FIXED.affine)
    path = tmp_path / "displacement.nii.gz"
    write_displacement(transform, FIXED, path)
    header = nib.load(str(path)).header
    assert header.get_data_shape() == (*SHAPE, 1, 3) and int(header["intent_code"]) == 1007
    field = sitk.ReadImage(str(path))
    assert field.GetDimension() == 3 and field.GetNumberOfComponentsPerPixel() == 3
    reference = _to_sitk(FIXED)
    assert np.allclose(field.GetOrigin(), reference.GetOrigin(), atol=1e-5)
    assert np.allclose(field.GetDirection(), reference.GetDirection(), atol=1e-6)
    assert np.allclose(field.GetSpacing(), reference.GetSpacing(), atol=1e-6)
    itk = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
    theirs = sitk.Resample(_to_sitk(MOVING), reference, itk, sitk.sitkLinear, 0.0)
    theirs = sitk.GetArrayFromImage(theirs).transpose(2, 1, 0)
    ours = warp_image(MOVING, FIXED, transform).array[0]
    inside = _inside_moving(transform)
    assert inside.mean() > 0.3
    # the file holds float32 millimetres: agreement to what that precision allows
    assert np.allclose(ours[inside], theirs[inside], atol=1e-4)


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points, np.ones((1, *points.shape[1:]))])


def test_displacement_round_trip(tmp_path: Path) -> None:
    transform = Transform(A, _field(), FIXED.affine)
    total = transform.total_displacement(FIXED.affine, SHAPE)
    write_displacement(total, FIXED, tmp_path / "d.nii.gz")
    field, affine = read_displacement(tmp_path / "d.nii.gz")
    assert np.array_equal(field, total) and np.allclose(affine, FIXED.affine, atol=1e-6)
    # read back as a pure displacement, it is the same transform on the fixed grid
    again = Transform(displacement=field, grid_affine=affine)
    assert np.allclose(again.total_displacement(affine, SHAPE), total, atol=1e-4)
    # the stored vectors are LPS: x and y negated
    stored = np.asarray(nib.load(str(tmp_path / "d.nii.gz")).dataobj)[:, :, :, 0, :]
    assert np.array_equal(stored[..., 0], -total[0]) and np.array_equal(stored[..., 2], total[2])


def test_nifti_displacement_intent_is_read_as_ras(tmp_path: Path) -> None:
    field = _field().astype(np.float32)
    nii = nib.Nifti1Image(np.moveaxis(field, 0, -1)[:, :, :, None, :], FIXED.affine)
    nii.header.set_intent("displacement vector")
    nib.save(nii, str(tmp_path / "ras.nii.gz"))
    assert np.array_equal(read_displacement(tmp_path / "ras.nii.gz")[0], field)


def test_displacement_refusals(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="not \\(3"):
        write_displacement(np.zeros((3, 2, 2, 2)), FIXED, tmp_path / "d.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.float32), np.eye(4)), str(tmp_path / "s.nii.gz"))
    with pytest.raises(ImageReadError, match="s.nii.gz: shape"):
        read_displacement(tmp_path / "s.nii.gz")
    with pytest.raises(ImageReadError, match="file not found"):
        read_displacement(tmp_path / "missing.nii.gz")


# --- Jacobian --------------------------------------------------------------------------------


def test_jacobian_file(tmp_path: Path) -> None:
    jacobian = jacobian_determinant(_field(), FIXED.affine)
    write_jacobian(jacobian, FIXED, tmp_path / "jacobian.nii.gz")
    again = read_image(tmp_path / "jacobian.nii.gz")
    assert again.array.dtype == np.float32 and np.array_equal(again.array[0], jacobian)
    assert np.allclose(again.affine, FIXED.affine, atol=1e-6)
    with pytest.raises(ImageWriteError, match="Jacobian shape"):
        write_jacobian(jacobian[:-1], FIXED, tmp_path / "bad.nii.gz")
