"""PNG, TIFF and JPEG reading and writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from medseg.errors import ImageReadError, ImageWriteError
from medseg.io import Image, read_image, spacing_affine, write_image
from medseg.io.raster import read_raster, write_raster

IDENTITY = np.eye(4)


def _dtype_class(dtype: np.dtype) -> str:
    return "float" if np.issubdtype(dtype, np.floating) else "integer"


def assert_round_trip(original: Image, again: Image, exact: bool = True) -> None:
    assert again.array.shape == original.array.shape
    assert _dtype_class(again.array.dtype) == _dtype_class(original.array.dtype)
    assert np.allclose(again.affine, original.affine, atol=1e-6)
    if exact:
        assert np.array_equal(again.array, original.array)


def _round_trip(image: Image, path: Path) -> Image:
    write_image(image, path)
    return read_image(path)


def _ramp(shape: tuple[int, int], dtype: type, scale: int = 1) -> np.ndarray:
    return ((np.arange(np.prod(shape)).reshape(shape) * scale) % (np.iinfo(dtype).max + 1)).astype(
        dtype
    )


def test_grey_png_round_trip(tmp_path: Path) -> None:
    image = Image(_ramp((17, 23), np.uint8)[None], IDENTITY)
    again = _round_trip(image, tmp_path / "grey.png")
    assert again.array.dtype == np.uint8
    assert_round_trip(image, again)


def test_rows_are_the_first_spatial_axis(tmp_path: Path) -> None:
    data = np.zeros((4, 9), np.uint8)
    data[1, 7] = 200
    path = tmp_path / "point.png"
    PILImage.fromarray(data).save(path)
    image = read_image(path)
    assert image.spatial_shape == (4, 9)
    assert image.array[0, 1, 7] == 200


def test_raster_affine_is_identity_with_1mm_pixels(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    PILImage.fromarray(np.zeros((5, 6), np.uint8)).save(path)
    image = read_image(path)
    assert np.array_equal(image.affine, spacing_affine((1.0, 1.0)))
    assert image.spacing == (1.0, 1.0)


def test_rgb_png_becomes_three_channels(tmp_path: Path) -> None:
    rgb = np.stack([_ramp((8, 10), np.uint8, k) for k in (1, 3, 7)], axis=-1)
    path = tmp_path / "rgb.png"
    PILImage.fromarray(rgb, mode="RGB").save(path)
    image = read_image(path)
    assert image.array.shape == (3, 8, 10)
    for channel in range(3):
        assert np.array_equal(image.array[channel], rgb[..., channel])
    assert_round_trip(image, _round_trip(image, tmp_path / "again.png"))
    with PILImage.open(tmp_path / "again.png") as written:
        assert written.mode == "RGB"


def test_rgba_png_drops_alpha(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 50, 128
    path = tmp_path / "rgba.png"
    PILImage.fromarray(rgba, mode="RGBA").save(path)
    image = read_image(path)
    assert image.array.shape == (3, 4, 5)
    assert np.all(image.array[0] == 50)


def test_grey_with_alpha_becomes_one_channel(tmp_path: Path) -> None:
    la = np.zeros((4, 5, 2), np.uint8)
    la[..., 0], la[..., 1] = 77, 255
    path = tmp_path / "la.png"
    PILImage.fromarray(la, mode="LA").save(path)
    image = read_image(path)
    assert image.array.shape == (1, 4, 5)
    assert np.all(image.array == 77)


def test_palette_png_keeps_its_indices(tmp_path: Path) -> None:
    """Label maps are often stored as palette images: the indices are the labels."""
    labels = np.zeros((6, 6), np.uint8)
    labels[1:3, 1:3], labels[4:, 4:] = 1, 2
    pil = PILImage.fromarray(labels, mode="P")
    pil.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    path = tmp_path / "palette.png"
    pil.save(path)
    image = read_image(path)
    assert image.array.shape == (1, 6, 6)
    assert np.array_equal(image.array[0], labels)


def test_bilevel_png_reads_as_uint8(tmp_path: Path) -> None:
    mask = np.zeros((5, 8), bool)
    mask[2:4, 3:6] = True
    path = tmp_path / "mask.png"
    PILImage.fromarray(mask).save(path)
    image = read_image(path)
    assert image.array.dtype == np.uint8
    assert np.array_equal(image.array[0], mask.astype(np.uint8))


def test_16_bit_png_keeps_values_and_dtype(tmp_path: Path) -> None:
    data = _ramp((12, 20), np.uint16, 257)
    assert data.max() > 255
    path = tmp_path / "sixteen.png"
    write_image(Image(data[None], IDENTITY), path)
    with PILImage.open(path) as pil:
        assert pil.mode.startswith("I")
    image = read_image(path)
    assert image.array.dtype == np.uint16
    assert np.array_equal(image.array[0], data)
    assert_round_trip(image, _round_trip(image, tmp_path / "again.png"))


def test_16_bit_png_written_by_pillow(tmp_path: Path) -> None:
    data = _ramp((9, 11), np.uint16, 601)
    path = tmp_path / "pil16.png"
    PILImage.fromarray(data).save(path)
    image = read_image(path)
    assert np.issubdtype(image.array.dtype, np.integer)
    assert np.array_equal(image.array[0], data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.uint16])
def test_tiff_round_trip_of_any_dtype(tmp_path: Path, dtype: type) -> None:
    data = np.random.default_rng(0).uniform(-100, 100, (1, 9, 13))
    if np.issubdtype(dtype, np.unsignedinteger):
        data = np.abs(data) * 300
    image = Image(data.astype(dtype), IDENTITY)
    again = _round_trip(image, tmp_path / "image.tif")
    assert again.array.dtype == dtype
    assert_round_trip(image, again)


def test_float_tiff_written_by_tifffile(tmp_path: Path) -> None:
    data = np.linspace(-1.5, 2.5, 7 * 8, dtype=np.float32).reshape(7, 8)
    path = tmp_path / "float.tiff"
    tifffile.imwrite(path, data)
    image = read_raster(path)
    assert image.array.dtype == np.float32
    assert np.array_equal(image.array[0], data)
    assert_round_trip(image, _round_trip(image, tmp_path / "again.tiff"))


def test_rgb_tiff_becomes_three_channels(tmp_path: Path) -> None:
    rgb = np.stack([_ramp((6, 7), np.uint8, k) for k in (1, 2, 5)], axis=-1)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    image = read_image(path)
    assert image.array.shape == (3, 6, 7)
    assert np.array_equal(image.array[2], rgb[..., 2])


def test_jpeg_round_trip_keeps_shape_and_dtype(tmp_path: Path) -> None:
    image = Image(np.full((1, 16, 16), 120, np.uint8), IDENTITY)
    again = _round_trip(image, tmp_path / "grey.jpg")
    assert_round_trip(image, again, exact=False)
    assert np.abs(again.array.astype(int) - 120).max() <= 2


def test_small_integers_are_written_as_8_bit_png(tmp_path: Path) -> None:
    labels = np.zeros((1, 4, 4), np.int64)
    labels[0, 1:3, 1:3] = 3
    again = _round_trip(Image(labels, IDENTITY), tmp_path / "labels.png")
    assert again.array.dtype == np.uint8
    assert np.array_equal(again.array, labels)


def test_bool_is_written_as_uint8_png(tmp_path: Path) -> None:
    mask = np.eye(5, dtype=bool)[None]
    again = _round_trip(Image(mask, IDENTITY), tmp_path / "mask.png")
    assert again.array.dtype == np.uint8
    assert np.array_equal(again.array, mask.astype(np.uint8))


# --- what cannot be written ------------------------------------------------------------


def _assert_refused(image: Image, path: Path, match: str) -> None:
    with pytest.raises(ImageWriteError, match=match) as info:
        write_image(image, path)
    assert str(path) in str(info.value)
    assert not path.exists()
    assert list(path.parent.iterdir()) == [], "a temporary file was left behind"


@pytest.mark.parametrize("name", ["float.png", "float.jpg"])
def test_float_data_cannot_be_written_as_png_or_jpeg(tmp_path: Path, name: str) -> None:
    image = Image(np.full((1, 4, 4), 0.5, np.float32), IDENTITY)
    _assert_refused(image, tmp_path / name, "float32")


def test_16_bit_rgb_cannot_be_written_as_png(tmp_path: Path) -> None:
    image = Image(np.full((3, 4, 4), 1000, np.uint16), IDENTITY)
    _assert_refused(image, tmp_path / "rgb16.png", "uint16")


def test_negative_integers_cannot_be_written_as_png(tmp_path: Path) -> None:
    image = Image(np.full((1, 4, 4), -1, np.int16), IDENTITY)
    _assert_refused(image, tmp_path / "negative.png", "int16")


def test_3d_image_cannot_be_written_as_png(tmp_path: Path) -> None:
    _assert_refused(Image(np.zeros((1, 2, 3, 4), np.uint8), IDENTITY), tmp_path / "v.png", "3D")


def test_two_channels_cannot_be_written_as_png(tmp_path: Path) -> None:
    image = Image(np.zeros((2, 3, 4), np.uint8), IDENTITY)
    _assert_refused(image, tmp_path / "two.png", "2 channels")


def test_write_raster_refuses_directly_too(tmp_path: Path) -> None:
    path = tmp_path / "float.png"
    with pytest.raises(ImageWriteError):
        write_raster(Image(np.zeros((1, 3, 3), np.float64), IDENTITY), path)
    assert not path.exists()


# --- broken files ----------------------------------------------------------------------


def _assert_read_error_names(path: Path) -> None:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_png(tmp_path: Path) -> None:
    path = tmp_path / "truncated.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    write_image(Image(noise[None], IDENTITY), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_read_error_names(path)


@pytest.mark.parametrize("name", ["garbage.png", "garbage.tif", "garbage.jpg"])
@pytest.mark.parametrize("content", [b"", b"not an image at all" * 20])
def test_garbage_bytes(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    _assert_read_error_names(path)


def test_missing_file(tmp_path: Path) -> None:
    _assert_read_error_names(tmp_path / "absent.png")


# --- real files --------------------------------------------------------------------------


def test_real_isbi_images_and_labels_round_trip(isbi_dir: Path, tmp_path: Path) -> None:
    images = sorted((isbi_dir / "imagesTr").glob("*.png"))[:2]
    labels = sorted((isbi_dir / "labelsTr").glob("*.png"))[:2]
    if not images or not labels:
        pytest.skip(f"no PNG files in {isbi_dir}")
    for path in images + labels:
        image = read_image(path)
        assert image.array.shape == (1, 512, 512)
        assert image.array.dtype == np.uint8
        assert_round_trip(image, _round_trip(image, tmp_path / path.name))
    for path in labels:
        assert set(np.unique(read_image(path).array).tolist()) <= {0, 1}


# --- TIFF stacks -------------------------------------------------------------------------------


def test_multi_page_tiff_reads_as_3d(tmp_path: Path) -> None:
    pages = _ramp((5 * 6 * 7,), np.uint16, 13).reshape(5, 6, 7)  # 5 pages of 6 rows x 7 columns
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages)
    image = read_image(path)
    assert image.array.shape == (1, 6, 7, 5)
    assert image.array.dtype == np.uint16
    for k in range(5):
        assert np.array_equal(image.array[0, :, :, k], pages[k])
    assert np.array_equal(image.affine, spacing_affine((1.0, 1.0, 1.0)))


def test_pages_written_one_by_one_are_stacked(tmp_path: Path) -> None:
    path = tmp_path / "pages.tiff"
    with tifffile.TiffWriter(path) as tif:
        for k in range(4):
            tif.write(np.full((3, 5), k, np.float32))
    image = read_image(path)
    assert image.array.shape == (1, 3, 5, 4)
    assert [float(image.array[0, 0, 0, k]) for k in range(4)] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_3d_tiff_round_trip(tmp_path: Path, dtype: type) -> None:
    data = np.random.default_rng(1).uniform(0, 100, (1, 6, 7, 3)).astype(dtype)
    image = Image(data, spacing_affine((1.0, 1.0, 1.0)))
    again = _round_trip(image, tmp_path / "volume.tif")
    assert again.array.dtype == dtype
    assert_round_trip(image, again)  # 3 grey pages are not taken for one RGB image


def test_rgb_stack_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(2).integers(0, 256, (3, 6, 7, 4)).astype(np.uint8)
    image = Image(data, spacing_affine((1.0, 1.0, 1.0)))
    assert_round_trip(image, _round_trip(image, tmp_path / "rgb_stack.tif"))


def test_planar_rgb_tiff_becomes_three_channels(tmp_path: Path) -> None:
    rgb = np.stack([_ramp((6, 7), np.uint8, k) for k in (1, 2, 5)])  # (samples, rows, columns)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    image = read_image(path)
    assert image.array.shape == (3, 6, 7)
    assert np.array_equal(image.array, rgb)


def test_tiff_with_two_page_axes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 4, 5), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(ImageReadError, match="unsupported TIFF layout") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_3d_tiff_with_two_channels_is_refused(tmp_path: Path) -> None:
    image = Image(np.zeros((2, 3, 4, 5), np.uint8), IDENTITY)
    _assert_refused(image, tmp_path / "two.tif", "2 channels")
