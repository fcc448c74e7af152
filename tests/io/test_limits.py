"""The input contract: regular files only, named data files inside their header's folder,
declared sizes checked against the voxel limit and the file before allocation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medseg.errors import ConfigError, ImageReadError
from medseg.io.limits import (
    DEFAULT_MAX_VOXELS,
    DEFLATE_MAX_RATIO,
    MAX_VOXELS_VARIABLE,
    check_declared_size,
    check_input_file,
    check_named_file,
    max_voxels,
)


def test_only_regular_files_are_inputs_and_each_refusal_says_why(tmp_path: Path) -> None:
    (tmp_path / "image.nii").write_bytes(b"x")
    os.symlink(tmp_path / "image.nii", tmp_path / "link.nii")
    os.mkfifo(tmp_path / "pipe.nii")
    os.symlink(tmp_path / "b.nii", tmp_path / "a.nii")
    os.symlink(tmp_path / "a.nii", tmp_path / "b.nii")
    os.symlink(tmp_path / "gone.nii", tmp_path / "broken.nii")
    assert check_input_file(tmp_path / "link.nii") == tmp_path / "link.nii"
    problems = {
        "pipe.nii": "not a regular file",
        "a.nii": "a symbolic-link loop",
        "broken.nii": "a broken symbolic link",
        "absent.nii": "file not found",
    }
    for name, problem in problems.items():
        with pytest.raises(ImageReadError, match=f"{name}: {problem}"):
            check_input_file(tmp_path / name)
    with pytest.raises(ConfigError, match="a folder, expected a file"):
        check_input_file(tmp_path, ConfigError)


def test_a_header_may_name_only_a_regular_file_in_its_own_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    (images / "sub" / "data.raw").write_bytes(b"x")
    (tmp_path / "secret.raw").write_bytes(b"x")
    os.symlink(tmp_path / "secret.raw", images / "out.raw")
    os.mkfifo(images / "pipe.raw")
    header = images / "scan.nhdr"
    assert check_named_file(header, "sub/data.raw") == (images / "sub" / "data.raw").resolve()
    for name in ("../secret.raw", str(tmp_path / "secret.raw"), "out.raw", "sub/../../secret.raw"):
        with pytest.raises(ImageReadError, match="outside its own folder"):
            check_named_file(header, name)
    with pytest.raises(ImageReadError, match="is not a file"):
        check_named_file(header, "pipe.raw")
    with pytest.raises(ImageReadError, match="is missing"):
        check_named_file(header, "absent.raw")


def test_declared_sizes_must_fit_the_limit_and_the_bytes_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    where = Path("x.nii.gz")
    check_declared_size(where, (64, 64, 64), 4, 64**3 * 4)  # exactly held
    check_declared_size(where, (64, 64, 64), 4, 1100, DEFLATE_MAX_RATIO)  # could inflate so
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        check_declared_size(where, (64, 64, 64), 4, 64**3 * 4 - 1)
    with pytest.raises(ImageReadError, match="truncated or corrupt"):
        check_declared_size(where, (64, 64, 64), 4, 1000, DEFLATE_MAX_RATIO)
    with pytest.raises(ImageReadError, match="more than the limit"):
        check_declared_size(where, (2048, 2048, 257), 1, 10**12)
    monkeypatch.setenv(MAX_VOXELS_VARIABLE, "1000")
    assert max_voxels() == 1000
    with pytest.raises(ImageReadError, match="more than the limit of 1e"):
        check_declared_size(where, (11, 10, 10), 1, 10**6)
    monkeypatch.setenv(MAX_VOXELS_VARIABLE, "-5")
    with pytest.raises(ImageReadError, match="expected a positive voxel count"):
        max_voxels()
    monkeypatch.delenv(MAX_VOXELS_VARIABLE)
    assert max_voxels() == DEFAULT_MAX_VOXELS
