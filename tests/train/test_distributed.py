"""Training on two CPU processes with torchrun (gloo, one thread each): the ranks keep the
same weights, the loss follows a single process's with the same global batch, and a killed
rank ends the job with a clear error and a usable checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from medseg.errors import ConfigError
from medseg.train import distributed
from medseg.train.distributed import Ranks

WORKER = Path(__file__).with_name("ddp_worker.py")
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_a_rank_trains_on_its_share_of_the_global_batch() -> None:
    assert [Ranks(r, 2).share(4) for r in (0, 1)] == [slice(0, 2), slice(2, 4)]
    with pytest.raises(ConfigError, match="multiple of 3"):
        Ranks(0, 3).share(4)


def _fake_group(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """`distributed_training` as rank 0 of 2, its process group calls recorded in ``calls``."""
    monkeypatch.setattr(distributed, "ranks_from_environment", lambda: Ranks(0, 2))
    monkeypatch.setattr(distributed.torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(distributed.time, "sleep", lambda s: calls.append(f"sleep {s}"))
    for name in ("init_process_group", "barrier", "destroy_process_group"):
        monkeypatch.setattr(distributed.dist, name, lambda *a, name=name, **k: calls.append(name))


def test_a_finished_rank_lets_the_collective_threads_go_before_the_group_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gloo thread frees a finished collective's tensors under the GIL a moment later; in
    Python's shutdown that aborted a finished rank ("terminate called without an active
    exception", 2 of 30 two-rank runs beside a busy core). So every rank meets at a barrier
    and sleeps briefly, the GIL released, before the group ends."""
    calls: list[str] = []
    _fake_group(monkeypatch, calls)
    with distributed.distributed_training(torch.device("cpu")):
        calls.append("train")
    settle = f"sleep {distributed.SETTLE_SECONDS}"
    assert calls == ["init_process_group", "train", "barrier", settle, "destroy_process_group"]


def test_a_rank_whose_peer_ended_stops_without_waiting_at_a_barrier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    _fake_group(monkeypatch, calls)
    stopped = pytest.raises(distributed.PeerStopped, match="another process of the run ended")
    with stopped, distributed.distributed_training(torch.device("cpu")):
        raise RuntimeError("[gloo] Connection closed by peer")
    grace = f"sleep {distributed.PEER_GRACE_SECONDS}"
    assert calls == ["init_process_group", grace, "destroy_process_group"]


def _torchrun(
    nproc: int, logs: Path, *args: object, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``torchrun`` on this machine, its own files in ``logs``."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", f"--log-dir={logs}", *map(str, args)]  # fmt: skip
    return subprocess.run(command, env=ONE_THREAD, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


def test_two_ranks_keep_identical_weights_and_follow_one_process(tmp_path: Path) -> None:
    two, one = tmp_path / "two", tmp_path / "one"
    finished = _torchrun(2, tmp_path / "torchrun", WORKER, two)
    assert finished.returncode == 0, finished.stderr[-3000:]
    alone = subprocess.run([sys.executable, WORKER, one], env=ONE_THREAD, capture_output=True,
                           text=True, timeout=300, check=False)  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-3000:]
    rank0, rank1 = load_file(two / "rank0.safetensors"), load_file(two / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the ranks"
    # the same global batch of the same patches: the loss curve of one process, within the
    # difference of a batch Dice taken over each rank's half instead of the whole batch
    losses_two = json.loads((two / "rank0.json").read_text())["losses"]
    losses_one = json.loads((one / "rank0.json").read_text())["losses"]
    assert len(losses_two) == len(losses_one) == 3
    assert losses_two == pytest.approx(losses_one, abs=0.05)
    single = load_file(one / "rank0.safetensors")
    drift = max(float((rank0[k] - single[k]).abs().max()) for k in rank0)
    assert drift < 0.05, "the two-process weights left the single-process ones"


def test_the_ranks_train_the_same_further_models_on_rank_zeros_clock(tmp_path: Path) -> None:
    """The time a capped run leaves over trains further models on every rank alike, even
    when the ranks' clocks disagree about the time left (they would deadlock otherwise)."""
    tmp_path.mkdir(exist_ok=True)
    finished = _torchrun(2, tmp_path / "torchrun", WORKER, "members", tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    trained = [json.loads((tmp_path / f"members{r}.json").read_text()) for r in (0, 1)]
    assert trained[0] == trained[1] == ["fold_all_1", "fold_all_2", "fold_all_3"]


def _rank_pid(marker: str, rank: int) -> int | None:
    """The pid of the torchrun worker of rank ``rank`` whose environment holds ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in environ and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_killing_a_rank_ends_the_job_and_leaves_a_usable_checkpoint(
    phantom3d: Path, tmp_path: Path
) -> None:
    from medseg.train.resume import load_training_state

    marker = f"MEDSEG_DDP_TEST={os.getpid()}"
    env = {**ONE_THREAD, "MEDSEG_DDP_TEST": str(os.getpid())}
    run = tmp_path / "run"
    command = [sys.executable, "-m", "medseg", "--quiet", "train", phantom3d, "--out", run,
               "--nproc", "2", "--epochs", "1000", "--iterations-per-epoch", "2",
               "--set", "n_folds=3"]  # fmt: skip
    job = subprocess.Popen(list(map(str, command)), env=env, stderr=subprocess.PIPE, text=True)
    state = run / "fold_all" / "training_state.pt"
    deadline = time.monotonic() + 240
    while not state.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.5)
    assert state.exists(), "no epoch was saved"
    pid = _rank_pid(marker, 1)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGKILL)
    try:
        _, err = job.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        job.kill()
        pytest.fail("the job did not end after a rank was killed")
    assert job.returncode != 0
    assert "a training process failed" in err and "--resume" in err
    saved = load_training_state(run / "fold_all", torch.device("cpu"))
    assert saved["iteration"] >= 2


def test_an_input_error_on_rank_zero_is_one_line_and_exit_code_2(phantom3d: Path, tmp_path):
    command = [sys.executable, "-m", "medseg", "--quiet", "train", phantom3d, "--out",
               tmp_path / "run", "--nproc", "2", "--epochs", "1"]  # fmt: skip
    done = subprocess.run(list(map(str, command)), env=ONE_THREAD, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"medseg: error: {phantom3d}: 3 cases are too few for 5 folds"
    ]


def test_spread_folds_trains_each_fold_on_one_process(phantom3d: Path, tmp_path: Path) -> None:
    run, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    command = [sys.executable, "-m", "medseg", "--quiet", "train", phantom3d, "--out", run,
               "--nproc", "2", "--cross-validation", "--spread-folds", "--epochs", "1",
               "--iterations-per-epoch", "2", "--set", "n_folds=3"]  # fmt: skip
    done = subprocess.run(list(map(str, command)), env={**ONE_THREAD, "TMPDIR": str(scratch)},
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # the launcher's files are not left behind (torch's compile cache may stay)
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor")] == []
    manifest = json.loads((run / "manifest.json").read_text())
    assert sorted(manifest["folds"]) == ["0", "1", "2"]  # every fold recorded, none lost
    assert (run / "cross_validation" / "summary.json").is_file()
