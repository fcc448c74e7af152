"""Output places are checked before work starts; leftovers of killed runs are cleaned."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medseg.errors import OutputError
from medseg.io import outputs
from medseg.io.outputs import check_output_file, prepare_output_folder


def test_an_output_folder_may_be_new_or_existing_but_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("notes")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / ".case.tmp4194400.nii.gz").write_bytes(b"")  # a killed run's
    assert prepare_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists(), "checking creates nothing"
    prepare_output_folder(tmp_path / "old")
    assert list((tmp_path / "old").iterdir()) == []
    with pytest.raises(OutputError, match="taken: exists and is not a folder"):
        prepare_output_folder(tmp_path / "taken")
    with pytest.raises(OutputError, match="cannot be created: .*taken is a file"):
        prepare_output_folder(tmp_path / "taken" / "preds")


def test_an_output_file_may_not_be_a_folder_or_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("notes")
    assert check_output_file(tmp_path / "a" / "b.nii.gz") == tmp_path / "a" / "b.nii.gz"
    with pytest.raises(OutputError, match="is a folder, expected a file name"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match="taken is a file"):
        check_output_file(tmp_path / "taken" / "b.nii.gz")


def test_a_full_disk_is_refused_before_work(tmp_path: Path, monkeypatch) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(outputs.shutil, "disk_usage", lambda _: usage._replace(free=1024))
    with pytest.raises(OutputError, match=r"the disk is full \(0.0 MiB free\)"):
        prepare_output_folder(tmp_path / "preds")
