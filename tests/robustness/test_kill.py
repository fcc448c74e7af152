"""SIGKILL in the middle of predict, evaluate and preprocess: whatever is visible afterwards
loads, the next run completes, and no temporary file survives it. (Training's kill test is
tests/train/test_kill_and_resume.py.)

The kill comes when the command's first output appears, plus a delay that varies by case,
so that it lands between files, in a write, or in the work between writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.io import read_image
from medseg.io.atomic import TEMPORARY_NAME

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL"),
]
DELAYS = (0.0, 0.15, 0.4)
PREDICTED = 5  # cases for predict, about 2.5 s each on one core: every delay kills it midway


def _medseg(*args: object) -> list[str]:
    return [sys.executable, "-m", "medseg", "--quiet", *map(str, args)]


def _kill_when(command: list[str], ready: Callable[[], bool], delay: float) -> None:
    """Start ``command``, SIGKILL it ``delay`` seconds after ``ready()`` holds; fail if it
    finished first (the case would test nothing)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    if process.poll() is not None:
        pytest.fail(f"the command ended before it could be killed: {process.stderr.read()}")
    process.send_signal(signal.SIGKILL)
    process.wait()


def _temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if TEMPORARY_NAME.match(p.name)]


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory, untrained_run_writer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("kill")
    dataset = write_phantom_dataset(
        root / "Dataset900_Phantom3D", n_train=30, n_test=0, dim=3, shape=(48, 48, 16)
    )
    run = untrained_run_writer(root / "run", target_spacing=(0.4, 0.4, 1.25))
    scans = root / "scans"
    scans.mkdir()
    for image in sorted((dataset / "imagesTr").iterdir())[:PREDICTED]:
        (scans / image.name).symlink_to(image)
    return {
        "dataset": dataset,
        "run": run,
        "scans": scans,
        "labels": dataset / "labelsTr",
    }


@pytest.mark.parametrize("delay", DELAYS)
def test_killed_predict_leaves_loadable_files_and_reruns(material, tmp_path, delay) -> None:
    out = tmp_path / "preds"
    command = _medseg("predict", material["run"], material["scans"], "--out", out)
    _kill_when(command, lambda: out.is_dir() and any(out.iterdir()), delay)
    for path in out.iterdir():
        if path.name == "predictions.json":
            assert json.loads(path.read_text())["cases"]  # whole, or not there
        elif not path.name.startswith("."):
            assert read_image(path).spatial_shape  # a visible file is a whole image
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert len(list(out.glob("*.nii.gz"))) == PREDICTED
    record = json.loads((out / "predictions.json").read_text())["cases"]
    assert len(record) == PREDICTED and {e["status"] for e in record.values()} == {"done"}
    assert _temporaries(out) == []


@pytest.mark.parametrize("delay", (0.0, 0.03, 0.08))  # its files come in a quick burst
def test_killed_evaluate_leaves_nothing_half_written_and_reruns(material, tmp_path, delay) -> None:
    out = tmp_path / "scores"
    labels = material["labels"]
    command = _medseg("evaluate", labels, labels, "--out", out, "--jobs", 1)
    _kill_when(command, lambda: out.is_dir() and any(out.iterdir()), delay)
    for name in ("summary.json", "metrics.csv"):
        if (out / name).exists():  # written whole or not at all
            text = (out / name).read_text()
            assert json.loads(text) if name.endswith(".json") else text.count("\n") > 30
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary
    assert _temporaries(out) == []


@pytest.mark.parametrize("delay", DELAYS)
def test_killed_preprocess_leaves_no_half_cache_and_reruns(material, tmp_path, delay) -> None:
    out = tmp_path / "cache"
    command = _medseg(
        "preprocess",
        material["dataset"],
        "--plan",
        material["run"] / "plan.json",
        "--out",
        out,
        "--jobs",
        1,
    )
    _kill_when(command, lambda: any(tmp_path.glob(".cache.building*/*.npy")), delay)
    assert not out.exists(), "the cache appeared before it was complete"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    images = sorted(out.glob("*_image.npy"))
    assert len(images) == 30 and np.load(images[0]).ndim == 4
    assert _temporaries(tmp_path) == []
