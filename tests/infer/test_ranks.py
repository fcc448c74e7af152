"""A cohort shared among torchrun's ranks: each rank its cases, one predictions.json, the
same label maps as one process, resuming, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from medseg.errors import ConfigError
from medseg.io import read_image
from medseg.parallel import Ranks, ranks_from_environment

CASES = [f"phantom_{k:03d}" for k in range(4)]


@pytest.fixture
def cohort(phantom3d, tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for path in [*(phantom3d / "imagesTr").iterdir(), *(phantom3d / "imagesTs").iterdir()]:
        shutil.copy(path, folder / path.name)
    return folder


def _predict(run, cohort, out, env: dict[str, str] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "medseg", "predict", str(run), str(cohort), "--out",
               str(out), "--device", "cpu"]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)


def _ranks(run, cohort, out) -> list[str]:
    """Two ranks started at once, as torchrun would; their stderr."""
    processes = [
        _predict(
            run,
            cohort,
            out,
            {"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "LOCAL_WORLD_SIZE": "2"},
        )  # fmt: skip
        for r in (0, 1)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors
    return errors


def test_each_rank_takes_its_share_and_one_record_lists_them_all(
    cohort, untrained_run_dir, tmp_path
):
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    assert _predict(untrained_run_dir, cohort, alone).wait(timeout=300) == 0
    _ranks(untrained_run_dir, cohort, shared)
    record = json.loads((shared / "predictions.json").read_text())
    assert sorted(record["cases"]) == CASES
    assert all(entry["status"] == "done" for entry in record["cases"].values())
    for case in CASES:
        ours, theirs = (read_image(d / f"{case}.nii.gz") for d in (shared, alone))
        assert np.array_equal(ours.array, theirs.array), case
    # resumed: only the missing case of rank 1's share (cases 1 and 3) is predicted again
    (shared / "phantom_003.nii.gz").unlink()
    errors = _ranks(untrained_run_dir, cohort, shared)
    assert "2 case(s) already predicted: skipped" in errors[0]
    assert "1 case(s) already predicted: skipped" in errors[1]
    assert (shared / "phantom_003.nii.gz").is_file()
    assert sorted(json.loads((shared / "predictions.json").read_text())["cases"]) == CASES


def test_under_torchrun(cohort, untrained_run_dir, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", f"--log-dir={tmp_path / 'torchrun'}", "-m", "medseg",
               "predict", str(untrained_run_dir), str(cohort), "--out", str(out),
               "--device", "cpu"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "predictions.json").read_text())
    assert sorted(record["cases"]) == CASES
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in CASES]


def test_the_share_of_each_rank():
    cases = list(range(7))
    shares = [Ranks(r, 3).items(cases) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    with pytest.raises(ConfigError, match="3 processes for 2 item"):
        Ranks(0, 3).items([0, 1])


def test_torchruns_environment_is_read_and_checked(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert ranks_from_environment() == Ranks()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert ranks_from_environment() == Ranks(3, 4, 1, 2)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="does not fit together"):
        ranks_from_environment()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="not numbers"):
        ranks_from_environment()
