"""NRRD and MetaImage reading and writing: real NRRD files checked against SimpleITK, round
trips between formats, and broken headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io import (
    Image,
    image_files,
    image_suffix,
    read_image,
    spacing_affine,
    write_image,
)
from medseg.io.itk import read_itk, write_itk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
OBLIQUE = np.array(
    [[0.3, 0.1, 0.0, 10.0], [-0.1, 0.3, 0.0, -3.0], [0.0, 0.0, -2.5, 5.0], [0.0, 0.0, 0.0, 1.0]]
)


def _itk_geometry(image: sitk.Image) -> np.ndarray:
    dim = image.GetDimension()
    affine = np.eye(4)
    direction = np.asarray(image.GetDirection()).reshape(dim, dim)
    affine[:dim, :dim] = direction * np.asarray(image.GetSpacing())
    affine[:dim, 3] = image.GetOrigin()
    return LPS_TO_RAS @ affine


def _assert_same(again: Image, original: Image) -> None:
    assert again.array.dtype == original.array.dtype
    assert np.array_equal(again.array, original.array)
    assert np.allclose(again.affine, original.affine, rtol=0, atol=1e-6)


def _nrrd_files(nrrd_dir: Path) -> list[Path]:
    return sorted(nrrd_dir.glob("*.nrrd"))


# --- real NRRD files -----------------------------------------------------------------------


def test_real_nrrd_equals_simpleitk(nrrd_dir: Path) -> None:
    for path in _nrrd_files(nrrd_dir):
        image = read_image(path)
        reference = sitk.ReadImage(str(path))
        assert image.array.shape == (1, *reference.GetSize())
        assert np.array_equal(image.array[0], sitk.GetArrayFromImage(reference).transpose(2, 1, 0))
        assert np.allclose(image.affine, _itk_geometry(reference), rtol=0, atol=1e-9)
        assert np.allclose(image.spacing, reference.GetSpacing())


def test_real_nrrd_masks_are_integer_label_maps(nrrd_dir: Path) -> None:
    for path in sorted(nrrd_dir.glob("*label*.nrrd")):
        mask = read_image(path)
        assert np.issubdtype(mask.array.dtype, np.integer)
        assert mask.array.min() >= 0 and mask.array.max() >= 1
        image = read_image(
            path.with_name(path.name.replace("_label", "_image").replace("-label", ""))
        )
        assert mask.spatial_shape == image.spatial_shape
        assert np.allclose(mask.affine, image.affine, atol=1e-4)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd", ".nhdr"])
def test_real_nrrd_round_trips(nrrd_dir: Path, tmp_path: Path, suffix: str) -> None:
    for path in _nrrd_files(nrrd_dir):
        image = read_image(path)
        target = tmp_path / (path.name.removesuffix(".nrrd") + suffix)
        write_image(image, target)
        _assert_same(read_image(target), image)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_nifti_to_nrrd_to_nifti_is_exact(hippocampus_dir: Path, tmp_path: Path) -> None:
    for path in (
        sorted((hippocampus_dir / "imagesTr").glob("*.nii.gz"))[:2]
        + sorted((hippocampus_dir / "labelsTr").glob("*.nii.gz"))[:1]
    ):
        original = read_image(path)
        write_image(original, tmp_path / "step.nrrd")
        _assert_same(read_image(tmp_path / "step.nrrd"), original)
        write_image(read_image(tmp_path / "step.nrrd"), tmp_path / "back.nii.gz")
        _assert_same(read_image(tmp_path / "back.nii.gz"), original)


def test_oblique_nifti_through_nrrd_and_mha(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(1, 6, 7, 5)).astype(np.float32)
    write_image(Image(data, OBLIQUE), tmp_path / "oblique.nii.gz")
    original = read_image(tmp_path / "oblique.nii.gz")
    for name in ("a.nrrd", "b.mha", "c.nii.gz"):
        write_image(original, tmp_path / name)
        _assert_same(read_image(tmp_path / name), original)


def test_written_geometry_is_what_simpleitk_reads(tmp_path: Path) -> None:
    image = Image(np.arange(6 * 7 * 5, dtype=np.int16).reshape(1, 6, 7, 5), OBLIQUE)
    for name in ("x.nrrd", "x.mha", "x.mhd"):
        write_image(image, tmp_path / name)
        reference = sitk.ReadImage(str(tmp_path / name))
        assert np.allclose(_itk_geometry(reference), OBLIQUE, atol=1e-9)
        assert np.array_equal(sitk.GetArrayFromImage(reference).transpose(2, 1, 0), image.array[0])


# --- shapes, channels, types -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd"])
@pytest.mark.parametrize("channels", [1, 3])
def test_2d_round_trip(tmp_path: Path, suffix: str, channels: int) -> None:
    affine = np.array([[0, -0.5, 0, 10], [0.7, 0, 0, -3], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    data = np.random.default_rng(1).integers(0, 255, (channels, 5, 7)).astype(np.uint8)
    image = Image(data, affine)
    write_image(image, tmp_path / f"flat{suffix}")
    _assert_same(read_image(tmp_path / f"flat{suffix}"), image)


def test_2d_image_off_the_z0_plane_is_refused(tmp_path: Path) -> None:
    affine = spacing_affine((1.0, 1.0))
    affine[2, 3] = 4.0
    with pytest.raises(ImageWriteError, match="z = 0 plane"):
        write_image(Image(np.zeros((1, 3, 3), np.float32), affine), tmp_path / "off.nrrd")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_dtype_is_kept(tmp_path: Path, dtype: type) -> None:
    data = np.random.default_rng(2).uniform(0, 100, (2, 3, 4, 5)).astype(dtype)
    image = Image(data, OBLIQUE)
    write_image(image, tmp_path / "typed.mha")
    _assert_same(read_image(tmp_path / "typed.mha"), image)


def test_bool_is_written_as_uint8(tmp_path: Path) -> None:
    mask = np.zeros((1, 3, 4, 5), bool)
    mask[0, 1, 2, 3] = True
    write_image(Image(mask, np.eye(4)), tmp_path / "mask.nrrd")
    again = read_image(tmp_path / "mask.nrrd")
    assert again.array.dtype == np.uint8 and again.array.sum() == 1


def test_4d_file_axis_becomes_channels(tmp_path: Path) -> None:
    volumes = [sitk.GetImageFromArray(np.full((3, 4, 5), t, np.int16)) for t in range(4)]
    sitk.WriteImage(sitk.JoinSeries(volumes), str(tmp_path / "four.nrrd"))
    image = read_image(tmp_path / "four.nrrd")
    assert image.array.shape == (4, 5, 4, 3)
    assert [int(image.array[t].max()) for t in range(4)] == [0, 1, 2, 3]


def test_vector_pixels_become_channels(tmp_path: Path) -> None:
    data = np.random.default_rng(4).normal(size=(3, 4, 5, 2)).astype(np.float32)  # z, y, x, C
    sitk.WriteImage(sitk.GetImageFromArray(data, isVector=True), str(tmp_path / "vec.mha"))
    image = read_image(tmp_path / "vec.mha")
    assert image.array.shape == (2, 5, 4, 3)
    assert np.array_equal(image.array, data.transpose(3, 2, 1, 0))


# --- files and names -------------------------------------------------------------------------


def test_suffixes_are_registered(tmp_path: Path) -> None:
    for name, suffix in [
        ("a.nrrd", ".nrrd"),
        ("A.NHDR", ".nhdr"),
        ("b.mha", ".mha"),
        ("c.mhd", ".mhd"),
        ("c.zraw", None),
        ("slice.dcm", None),  # read only, and one slice is no image of its own
    ]:
        assert image_suffix(name) == suffix
    write_image(Image(np.zeros((1, 2, 3, 4), np.int16), np.eye(4)), tmp_path / "c.mhd")
    write_image(Image(np.zeros((1, 2, 3, 4), np.int16), np.eye(4)), tmp_path / "d.nhdr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mhd", "c.zraw", "d.nhdr", "d.raw.gz"]
    assert [p.name for p in image_files(tmp_path)] == ["c.mhd", "d.nhdr"]


def test_detached_header_is_overwritten_in_place(tmp_path: Path) -> None:
    target = tmp_path / "v.mhd"
    write_image(Image(np.zeros((1, 2, 3, 4), np.int16), np.eye(4)), target)
    write_image(Image(np.ones((1, 5, 3, 2), np.int16), np.eye(4)), target)
    assert read_image(target).spatial_shape == (5, 3, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mhd", "v.zraw"]


@pytest.mark.parametrize("name", ["keep.mhd", "keep.nrrd"])
def test_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    target = tmp_path / name
    original = Image(np.full((1, 2, 3, 4), 7, np.int16), np.eye(4))
    write_image(original, target)
    before = sorted(p.name for p in tmp_path.iterdir())
    real_write = sitk.WriteImage

    def write_then_fail(*args: object) -> None:
        real_write(*args)  # the files are there, then the disk fills up
        raise RuntimeError("ITK ERROR: ImageFileWriter(0x1): No space left on device")

    monkeypatch.setattr(sitk, "WriteImage", write_then_fail)
    with pytest.raises(ImageWriteError, match="No space left on device"):
        write_itk(Image(np.zeros((1, 5, 5, 5), np.int16), np.eye(4)), target)
    monkeypatch.undo()
    _assert_same(read_image(target), original)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# --- broken files ----------------------------------------------------------------------------

RAW = np.arange(24, dtype=np.int16).tobytes()


def _nrrd(path: Path, directions: str, origin: str = "(0,0,0)") -> Path:
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\n"
        f"space directions: {directions}\nkinds: domain domain domain\nendian: little\n"
        f"encoding: raw\nspace origin: {origin}\n\n"
    )
    path.write_bytes(header.encode() + RAW)
    return path


def _mha(
    path: Path, spacing: str, offset: str = "0 0 0", matrix: str = "1 0 0 0 1 0 0 0 1"
) -> Path:
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"TransformMatrix = {matrix}\nOffset = {offset}\nElementSpacing = {spacing}\n"
        "DimSize = 4 3 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + RAW)
    return path


def _assert_read_error(path: Path, match: str) -> None:
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_hand_written_headers_read(tmp_path: Path) -> None:
    for path in (
        _nrrd(tmp_path / "ok.nrrd", "(1,0,0) (0,1,0) (0,0,2)", "(1,2,3)"),
        _mha(tmp_path / "ok.mha", "1 1 2", "1 2 3"),
    ):
        image = read_itk(path)
        assert image.array.shape == (1, 4, 3, 2)
        assert np.array_equal(image.array[0].transpose(2, 1, 0).ravel(), np.arange(24))
        expected = np.diag([-1.0, -1.0, 2.0, 1.0])  # LPS (1, 1, 2) mm voxels in RAS
        expected[:3, 3] = (-1.0, -2.0, 3.0)  # LPS origin (1, 2, 3)
        assert np.allclose(image.affine, expected)


@pytest.mark.parametrize(
    ("name", "directions", "origin", "match"),
    [
        ("zero.nrrd", "(0,0,0) (0,1,0) (0,0,2)", "(0,0,0)", "spacing"),
        ("nan.nrrd", "(nan,0,0) (0,1,0) (0,0,2)", "(0,0,0)", "space directions"),
        ("nan_origin.nrrd", "(1,0,0) (0,1,0) (0,0,2)", "(nan,0,0)", "space origin"),
        ("inf_origin.nrrd", "(1,0,0) (0,1,0) (0,0,2)", "(inf,0,0)", "space origin"),
        ("flat.nrrd", "(1,0,0) (1,0,0) (0,0,2)", "(0,0,0)", "direction"),
    ],
)
def test_bad_nrrd_geometry(
    tmp_path: Path, name: str, directions: str, origin: str, match: str
) -> None:
    _assert_read_error(_nrrd(tmp_path / name, directions, origin), match)


@pytest.mark.parametrize(
    ("name", "spacing", "offset", "matrix", "match"),
    [
        ("zero.mha", "0 1 2", "0 0 0", "1 0 0 0 1 0 0 0 1", "ElementSpacing"),
        ("negative.mha", "-1 1 2", "0 0 0", "1 0 0 0 1 0 0 0 1", "ElementSpacing"),
        ("nan.mha", "nan 1 2", "0 0 0", "1 0 0 0 1 0 0 0 1", "ElementSpacing"),
        ("nan_offset.mha", "1 1 2", "nan 0 0", "1 0 0 0 1 0 0 0 1", "Offset"),
        ("inf_matrix.mha", "1 1 2", "0 0 0", "1 0 0 0 inf 0 0 0 1", "TransformMatrix"),
        ("singular.mha", "1 1 2", "0 0 0", "1 0 0 1 0 0 0 0 1", "direction"),
    ],
)
def test_bad_metaimage_geometry(
    tmp_path: Path, name: str, spacing: str, offset: str, matrix: str, match: str
) -> None:
    _assert_read_error(_mha(tmp_path / name, spacing, offset, matrix), match)


@pytest.mark.parametrize("name", ["cut.nrrd", "cut.mha"])
def test_truncated_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_image(Image(np.random.default_rng(5).normal(size=(1, 8, 9, 10)), np.eye(4)), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error(path, "not a readable image")


@pytest.mark.parametrize("name", ["garbage.nrrd", "garbage.nhdr", "garbage.mha", "garbage.mhd"])
@pytest.mark.parametrize("content", [b"", b"not an image at all" * 20])
def test_garbage_bytes(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _assert_read_error(path, "not a readable image")


def test_missing_file_and_missing_data_file(tmp_path: Path) -> None:
    _assert_read_error(tmp_path / "absent.nrrd", "file not found")
    write_image(Image(np.zeros((1, 2, 3, 4), np.int16), np.eye(4)), tmp_path / "h.mhd")
    (tmp_path / "h.zraw").unlink()
    _assert_read_error(tmp_path / "h.mhd", "the data file it names is missing: .h.zraw.")
