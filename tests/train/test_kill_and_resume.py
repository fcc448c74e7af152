"""A training process killed with SIGKILL at an arbitrary moment resumes to a valid run."""

import os
import signal
import subprocess
import sys
import time

import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.infer import load_trained_model
from medseg.train import Plan
from medseg.train.resume import STATE_FILE

pytestmark = pytest.mark.slow


def _medseg(*args):
    return [sys.executable, "-m", "medseg", "--quiet", *map(str, args)]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
@pytest.mark.parametrize("extra_wait", [0.0, 0.7])
def test_sigkill_then_resume_gives_a_complete_run(tmp_path, extra_wait):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(40, 40))
    run = tmp_path / "run"
    train = _medseg(
        "train", data, "--out", run, "--fold", 0, "--epochs", 5, "--iterations-per-epoch", 4
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(train, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = run / "fold_0" / STATE_FILE
    deadline = time.monotonic() + 120
    # kill once the first epoch is saved, plus a little: mid-epoch, mid-write or between
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(extra_wait)
    if process.poll() is not None:
        pytest.fail(f"training ended before it could be killed: {process.stderr.read()}")
    process.send_signal(signal.SIGKILL)
    process.wait()

    resumed = subprocess.run(
        [*train, "--resume"], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    fold = run / "fold_0"
    rows = (fold / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3, 4, 5]
    assert [int(r.split(",")[1]) for r in rows] == [4, 8, 12, 16, 20]
    assert not list(fold.glob(".*.tmp*")), "a temporary file survived the resume"
    assert len(load_trained_model(run, device="cpu").networks) == 1
    assert (fold / "validation" / "summary.json").is_file()
    assert Plan.load(run).epochs == 5
