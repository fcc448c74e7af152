"""The Image type, grid comparison and the format dispatch of read_image / write_image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageReadError, ImageWriteError, MedsegError
from medseg.io import (
    SUPPORTED_SUFFIXES,
    Image,
    image_suffix,
    read_image,
    same_grid,
    spacing_affine,
    write_image,
)


def test_image_properties_of_a_3d_image() -> None:
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    image = Image(np.zeros((2, 4, 5, 6), np.float32), affine)
    assert image.channels == 2
    assert image.spatial_shape == (4, 5, 6)
    assert image.ndim == 3
    assert np.allclose(image.spacing, (0.8, 0.9, 2.5))
    assert image.affine.dtype == np.float64


def test_image_spacing_of_a_rotated_affine_is_the_column_norm() -> None:
    theta = np.pi / 6
    rotation = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.5, 2.0, 3.0])
    image = Image(np.zeros((1, 2, 2, 2), np.uint8), affine)
    assert np.allclose(image.spacing, (0.5, 2.0, 3.0))


def test_image_2d_spacing() -> None:
    image = Image(np.zeros((1, 4, 5), np.uint8), spacing_affine((0.5, 0.25)))
    assert image.ndim == 2
    assert image.spacing == (0.5, 0.25)


@pytest.mark.parametrize("shape", [(4,), (4, 5), (1, 2, 3, 4, 5)])
def test_image_rejects_arrays_that_are_not_channel_first_2d_or_3d(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="Image array"):
        Image(np.zeros(shape), np.eye(4))


def test_image_rejects_a_non_4x4_affine() -> None:
    with pytest.raises(ValueError, match="4x4"):
        Image(np.zeros((1, 2, 2)), np.eye(3))


def test_with_array_keeps_geometry_and_checks_the_shape() -> None:
    affine = spacing_affine((1.0, 2.0, 3.0))
    image = Image(np.zeros((1, 3, 4, 5), np.float32), affine)
    other = image.with_array(np.ones((2, 3, 4, 5), np.uint8))
    assert other.channels == 2
    assert np.array_equal(other.affine, affine)
    with pytest.raises(ValueError, match="spatial shape"):
        image.with_array(np.ones((1, 3, 4, 6)))


def test_same_grid() -> None:
    a = Image(np.zeros((1, 3, 4, 5)), np.eye(4))
    assert same_grid(a, Image(np.ones((2, 3, 4, 5)), np.eye(4)))
    assert not same_grid(a, Image(np.zeros((1, 3, 4, 6)), np.eye(4)))
    shifted = np.eye(4)
    shifted[0, 3] = 0.01
    assert not same_grid(a, Image(np.zeros((1, 3, 4, 5)), shifted))
    shifted[0, 3] = 1e-5
    assert same_grid(a, Image(np.zeros((1, 3, 4, 5)), shifted))


def test_spacing_affine() -> None:
    assert np.array_equal(spacing_affine((0.5, 2.0)), np.diag([0.5, 2.0, 1.0, 1.0]))
    assert np.array_equal(spacing_affine((0.8, 0.8, 2.5)), np.diag([0.8, 0.8, 2.5, 1.0]))


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("case_0000.nii.gz", ".nii.gz"),
        ("CASE.NII.GZ", ".nii.gz"),
        ("case.nii", ".nii"),
        ("slice.png", ".png"),
        ("slice.tif", ".tif"),
        ("slice.tiff", ".tiff"),
        ("photo.JPG", ".jpg"),
        ("notes.txt", None),
        ("archive.gz", None),
        ("dataset.json", None),
    ],
)
def test_image_suffix(name: str, suffix: str | None) -> None:
    assert image_suffix(name) == suffix


def test_supported_suffixes_cover_nifti_and_raster() -> None:
    assert {".nii.gz", ".nii", ".png", ".tif"} <= set(SUPPORTED_SUFFIXES)


def test_read_unsupported_type_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="notes.txt") as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, MedsegError)


def test_write_unsupported_type_names_the_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    with pytest.raises(ImageWriteError) as info:
        write_image(Image(np.zeros((1, 2, 2), np.uint8), np.eye(4)), path)
    assert str(path) in str(info.value)
    assert list(tmp_path.iterdir()) == []
