"""NIfTI reading and writing: round trips keep shape, dtype class and affine."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io import Image, read_image, write_image
from medseg.io.nifti import read_nifti, write_nifti


def _oblique_affine() -> np.ndarray:
    """A rotated, anisotropic affine whose entries are exact in float32 (NIfTI stores float32)."""
    theta = np.pi / 7
    rotation = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.75, 1.25, 2.5])
    affine[:3, 3] = [-90.5, 12.25, -40.0]
    return affine.astype(np.float32).astype(np.float64)


def _dtype_class(dtype: np.dtype) -> str:
    if np.issubdtype(dtype, np.floating):
        return "float"
    if np.issubdtype(dtype, np.integer):
        return "integer"
    return str(dtype)


def assert_round_trip(original: Image, again: Image) -> None:
    assert again.array.shape == original.array.shape
    assert _dtype_class(again.array.dtype) == _dtype_class(original.array.dtype)
    assert np.allclose(again.affine, original.affine, atol=1e-6)
    assert np.array_equal(again.array, original.array)


def _round_trip(image: Image, path: Path) -> Image:
    write_image(image, path)
    return read_image(path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("ending", [".nii.gz", ".nii"])
def test_synthetic_3d_round_trip(tmp_path: Path, dtype: type, ending: str) -> None:
    rng = np.random.default_rng(0)
    array = (rng.uniform(0, 200, (1, 7, 6, 5))).astype(dtype)
    image = Image(array, _oblique_affine())
    again = _round_trip(image, tmp_path / f"image{ending}")
    assert_round_trip(image, again)
    assert again.array.dtype == dtype


def test_round_trip_of_the_written_file_is_stable(tmp_path: Path) -> None:
    """write(read(f)) on a file written by medseg gives back the same image."""
    first = tmp_path / "first.nii.gz"
    write_image(Image(np.arange(60, dtype=np.int16).reshape(1, 3, 4, 5), _oblique_affine()), first)
    image = read_image(first)
    again = _round_trip(image, tmp_path / "second.nii.gz")
    assert_round_trip(image, again)


def test_written_file_carries_the_affine_in_sform_and_qform(tmp_path: Path) -> None:
    path = tmp_path / "image.nii.gz"
    affine = _oblique_affine()
    write_nifti(Image(np.zeros((1, 3, 4, 5), np.float32), affine), path)
    nii = nib.load(str(path))
    assert int(nii.header["sform_code"]) == 1
    assert int(nii.header["qform_code"]) == 1
    assert np.allclose(nii.header.get_sform(), affine, atol=1e-6)
    assert np.allclose(nii.header.get_qform(), affine, atol=1e-5)
    assert nii.header.get_xyzt_units()[0] == "mm"


def test_2d_nifti_round_trip(tmp_path: Path) -> None:
    image = Image(np.arange(12, dtype=np.float32).reshape(1, 3, 4), np.diag([0.5, 0.7, 1, 1]))
    again = _round_trip(image, tmp_path / "slice.nii.gz")
    assert again.ndim == 2
    assert_round_trip(image, again)


def test_bool_is_written_as_uint8(tmp_path: Path) -> None:
    mask = np.zeros((1, 4, 4, 4), bool)
    mask[0, 1:3, 1:3, 1:3] = True
    again = _round_trip(Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    assert again.array.dtype == np.uint8
    assert np.array_equal(again.array, mask.astype(np.uint8))


def test_4d_nifti_becomes_channels(tmp_path: Path) -> None:
    """MSD stores modalities along a 4th axis; medseg reads them as channels."""
    data = np.random.default_rng(1).normal(size=(5, 6, 7, 2)).astype(np.float32)
    path = tmp_path / "msd.nii.gz"
    nib.save(nib.Nifti1Image(data, _oblique_affine()), str(path))
    image = read_nifti(path)
    assert image.array.shape == (2, 5, 6, 7)
    assert image.spatial_shape == (5, 6, 7)
    for channel in range(2):
        assert np.array_equal(image.array[channel], data[..., channel])
    assert np.allclose(image.affine, _oblique_affine(), atol=1e-6)
    again = _round_trip(image, tmp_path / "again.nii.gz")
    assert_round_trip(image, again)
    assert nib.load(str(tmp_path / "again.nii.gz")).shape == (5, 6, 7, 2)


def test_5d_nifti_with_singleton_time_becomes_channels(tmp_path: Path) -> None:
    data = np.arange(4 * 3 * 2 * 1 * 3, dtype=np.int16).reshape(4, 3, 2, 1, 3)
    path = tmp_path / "vector.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    image = read_image(path)
    assert image.array.shape == (3, 4, 3, 2)
    assert np.array_equal(image.array[2], data[:, :, :, 0, 2])


def test_unsupported_nifti_shape_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "five_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 2, 2), np.float32), np.eye(4)), str(path))
    with pytest.raises(ImageReadError, match="unsupported NIfTI shape") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_multichannel_3d_image_round_trip(tmp_path: Path) -> None:
    image = Image(np.random.default_rng(2).normal(size=(3, 4, 5, 6)), _oblique_affine())
    assert_round_trip(image, _round_trip(image, tmp_path / "three.nii.gz"))


def test_2d_multichannel_image_keeps_its_shape_or_is_refused(tmp_path: Path) -> None:
    image = Image(np.zeros((3, 5, 6), np.uint8), np.eye(4))
    path = tmp_path / "rgb.nii.gz"
    try:
        write_image(image, path)
    except ImageWriteError:
        return
    assert read_image(path).array.shape == (3, 5, 6)


def test_unwritable_dtype_is_an_image_write_error_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "labels.nii.gz"
    with pytest.raises(ImageWriteError) as info:
        write_image(Image(np.ones((1, 3, 3, 3), np.float16), np.eye(4)), path)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --- broken files ----------------------------------------------------------------------


def _assert_names_file(error: pytest.ExceptionInfo[ImageReadError], path: Path) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message


def test_truncated_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.nii.gz"
    rng = np.random.default_rng(3)
    write_image(Image(rng.normal(size=(1, 20, 20, 20)).astype(np.float32), np.eye(4)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    _assert_names_file(info, path)


def _truncated_uncompressed_file(folder: Path) -> Path:
    path = folder / "truncated.nii"
    write_image(Image(np.ones((1, 20, 20, 20), np.float32), np.eye(4)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_uncompressed_file(tmp_path: Path) -> None:
    path = _truncated_uncompressed_file(tmp_path)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_uncompressed_file_message_is_one_line(tmp_path: Path) -> None:
    path = _truncated_uncompressed_file(tmp_path)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["garbage.nii.gz", "garbage.nii"])
@pytest.mark.parametrize("content", [b"", b"this is not an image" * 50, bytes(range(256)) * 4])
def test_garbage_bytes(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    _assert_names_file(info, path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.nii.gz"
    with pytest.raises(ImageReadError, match="not found") as info:
        read_image(path)
    _assert_names_file(info, path)


# --- real files --------------------------------------------------------------------------


def _first_files(folder: Path, count: int) -> list[Path]:
    files = sorted(folder.glob("*.nii.gz"))[:count]
    if not files:
        pytest.skip(f"no NIfTI files in {folder}")
    return files


def test_real_hippocampus_images_and_labels_round_trip(
    hippocampus_dir: Path, tmp_path: Path
) -> None:
    pairs = list(
        zip(
            _first_files(hippocampus_dir / "imagesTr", 3),
            _first_files(hippocampus_dir / "labelsTr", 3),
        )
    )
    for image_path, label_path in pairs:
        image, label = read_image(image_path), read_image(label_path)
        assert image.channels == 1 and image.ndim == 3
        assert label.spatial_shape == image.spatial_shape
        assert np.issubdtype(label.array.dtype, np.integer)
        assert set(np.unique(label.array).tolist()) <= {0, 1, 2}
        for original, name in ((image, image_path.name), (label, label_path.name)):
            assert_round_trip(original, _round_trip(original, tmp_path / name))


@pytest.mark.parametrize(
    "name",
    [
        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    ],
)
def test_real_mni_template_round_trip(mni_dir: Path, tmp_path: Path, name: str) -> None:
    path = mni_dir / name
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    image = read_image(path)
    assert image.spatial_shape == (197, 233, 189)
    assert np.allclose(image.spacing, (1.0, 1.0, 1.0), atol=1e-6)
    assert_round_trip(image, _round_trip(image, tmp_path / name))


def test_zero_spacing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "flat.nii.gz"
    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    image.set_qform(None, code=0)
    image.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)  # the second voxel size is zero
    nib.save(image, path)
    with pytest.raises(ImageReadError, match="spacing .* has a zero") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_rgb24_voxels_become_three_channels(tmp_path: Path) -> None:
    rgb = np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["G"][1, 2, 3] = 200
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii.gz")
    image = read_nifti(tmp_path / "rgb.nii.gz")
    assert image.array.shape == (3, 4, 5, 6)
    assert image.array[1, 1, 2, 3] == 200 and image.array.sum() == 200


def test_complex_voxels_and_lying_headers_are_refused_before_reading(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.complex64), np.eye(4)), tmp_path / "c.nii")
    with pytest.raises(ImageReadError, match="c.nii: complex voxels"):
        read_nifti(tmp_path / "c.nii")
    header = nib.Nifti1Header()
    header.set_data_shape((2000, 2000, 2000))
    header.set_data_dtype(np.float32)
    (tmp_path / "huge.nii").write_bytes(header.binaryblock + bytes(4))
    with pytest.raises(ImageReadError, match="huge.nii: declares 2000 x 2000 x 2000 voxels"):
        read_nifti(tmp_path / "huge.nii")
    header.set_data_shape((64, 64, 64))
    header["vox_offset"] = 352
    (tmp_path / "short.nii").write_bytes(header.binaryblock + bytes(1004))
    with pytest.raises(ImageReadError, match="short.nii: .* but holds 1000: truncated"):
        read_nifti(tmp_path / "short.nii")
