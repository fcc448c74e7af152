"""Atomic writes: a file appears whole or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageWriteError, OutputError
from medseg.io import Image, atomic_path, write_image, write_text_atomic
from medseg.io.atomic import remove_stale_temporaries


class Boom(RuntimeError):
    pass


def test_successful_block_moves_the_file_into_place(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    with atomic_path(target) as tmp:
        assert tmp != target
        assert tmp.parent == target.parent
        tmp.write_text("done")
        assert not target.exists(), "the target must not appear before the block ends"
    assert target.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_temporary_name_is_hidden_and_keeps_the_full_suffix(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "case_0000.nii.gz") as tmp:
        assert tmp.name.startswith(".")
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"x")


def test_raising_block_leaves_no_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "result.nii.gz"
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of a file")
        raise Boom("writer failed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_raising_block_before_writing_anything(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    with pytest.raises(Boom), atomic_path(target):
        raise Boom("nothing written")
    assert list(tmp_path.iterdir()) == []


def test_raising_block_keeps_the_previous_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old content")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("new content")
        raise Boom
    assert target.read_text() == "old content"
    assert list(tmp_path.iterdir()) == [target]


def test_successful_block_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "result.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("deep")
    assert target.read_text() == "deep"


def test_write_text_atomic(tmp_path: Path) -> None:
    target = tmp_path / "notes" / "ümlaut.json"
    write_text_atomic(target, '{"name": "Größe"}\n')
    assert target.read_text(encoding="utf-8") == '{"name": "Größe"}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["ümlaut.json"]


def test_failed_image_write_keeps_the_previous_image(tmp_path: Path) -> None:
    """A refused write (float data to PNG) leaves an existing file as it was."""
    target = tmp_path / "slice.png"
    write_image(Image(np.full((1, 4, 4), 9, np.uint8), np.eye(4)), target)
    before = target.read_bytes()
    with pytest.raises(ImageWriteError, match="slice.png"):
        write_image(Image(np.full((1, 4, 4), 0.5, np.float32), np.eye(4)), target)
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]


def test_temporaries_of_dead_processes_are_removed_and_a_running_writers_kept(
    tmp_path: Path,
) -> None:
    dead = 2**22 + 12345  # above Linux's largest process id: no process has it
    (tmp_path / f".case.tmp{dead}.nii.gz").write_bytes(b"")
    (tmp_path / f".cache.building{dead}").mkdir()
    (tmp_path / f".cache.building{dead}" / "a_image.npy").write_bytes(b"x")
    (tmp_path / f".mine.tmp{os.getpid()}.nii.gz").write_bytes(b"")
    (tmp_path / ".notes.txt").write_text("a user's hidden file")
    (tmp_path / "case.nii.gz").write_bytes(b"a result")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == [f".cache.building{dead}", f".case.tmp{dead}.nii.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".mine.tmp" + str(os.getpid()) + ".nii.gz",
        ".notes.txt",
        "case.nii.gz",
    ]
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_a_full_disk_during_a_write_names_the_file(tmp_path: Path) -> None:
    target = tmp_path / "labels.nii.gz"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with (
        pytest.raises(OutputError, match="labels.nii.gz: No space left on device"),
        atomic_path(target) as tmp,
    ):
        tmp.write_bytes(b"half")
        raise full
    assert list(tmp_path.iterdir()) == []
