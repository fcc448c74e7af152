"""Training on several processes with PyTorch's own engine: torchrun starts one process per
device, `DistributedDataParallel` averages the gradients (gloo on CPUs, NCCL on GPUs).

Every rank draws the same global batch (the same seeds) and trains on its own share of it,
so a step sees exactly the data a single process would see with that global batch, whatever
the number of processes; rank 0 alone plans, preprocesses, validates and writes files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist

from medseg.errors import ConfigError
from medseg.parallel import Ranks, available_cores, ranks_from_environment

#: How long a process whose peer ended waits before it ends too (see `distributed_training`).
PEER_GRACE_SECONDS = 3.0
#: How long a finished process waits for the collectives' threads (see `_settle`).
SETTLE_SECONDS = 0.2
#: How long ranks wait for each other (rank 0 plans and preprocesses while the others wait).
RENDEZVOUS_TIMEOUT = dt.timedelta(hours=4)


class PeerStopped(Exception):
    """Another process of a distributed run ended (it failed or was killed), so this one
    cannot go on; the process that failed says why."""


_current = Ranks()


def current_ranks() -> Ranks:
    """The ranks of the process group `distributed_training` started (else one process)."""
    return _current


@contextlib.contextmanager
def distributed_training(device: torch.device) -> Iterator[Ranks]:
    """Join the process group torchrun set up, if any, for the duration of the block (NCCL
    for a CUDA ``device``, else gloo); yields this process's ranks. Threads per process: the
    cores shared out among the machine's processes."""
    global _current
    ranks = ranks_from_environment()
    if not ranks.distributed:
        yield ranks
        return
    if device.type == "cuda":
        if ranks.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"{ranks.local_world_size} processes on a machine with "
                f"{torch.cuda.device_count()} GPU(s): start at most one per GPU"
            )
        torch.cuda.set_device(torch.device("cuda", ranks.local_rank))
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.set_num_threads(ranks.threads())
    dist.init_process_group(backend, timeout=RENDEZVOUS_TIMEOUT)
    _current = ranks
    try:
        yield ranks
    except RuntimeError as exc:
        if not _peer_gone(exc):
            raise
        # let the process that failed end first: the launcher reports the first exit it sees
        time.sleep(PEER_GRACE_SECONDS)
        message = f"process {ranks.rank} stopped: another process of the run ended"
        raise PeerStopped(message) from exc
    else:
        _settle()
    finally:
        _current = Ranks()
        dist.destroy_process_group()


def _settle() -> None:
    """Let the collectives' worker threads let go before this process may end. A gloo thread
    frees a finished collective's tensors a moment after the collective returns, taking the
    GIL to do so; if that moment falls in Python's shutdown the process aborts ("terminate
    called without an active exception") after a finished run, and destroying the group does
    not stop those threads (`DistributedDataParallel` keeps the group alive). Every rank
    waits at a barrier, then sleeps a little with the GIL released so that the threads run."""
    dist.barrier()
    time.sleep(SETTLE_SECONDS)


def _peer_gone(exc: RuntimeError) -> bool:
    """Whether a collective failed because another process ended (gloo raises a plain
    RuntimeError naming the closed connection; NCCL and the store their own types)."""
    if isinstance(exc, (dist.DistBackendError, dist.DistNetworkError)):
        return True
    text = str(exc)
    return any(s in text for s in ("Connection closed by peer", "Connection reset by peer",
                                   "Broken pipe"))  # fmt: skip


@contextlib.contextmanager
def single_process() -> Iterator[None]:
    """For the block, this process trains on its own (no gradient averaging, no waiting for
    the others, writing its own files), though it stays in the process group."""
    global _current
    saved, _current = _current, Ranks()
    try:
        yield
    finally:
        _current = saved


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if _current.distributed:
        dist.barrier()


def _collective_device() -> torch.device:
    """Where tensors for collectives live: the GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agree(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. whether another epoch fits the time budget: the
    ranks' clocks differ by a little, their steps must not)."""
    if not _current.distributed:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
    dist.broadcast(value, src=0)
    return bool(value.item())


def from_rank_zero(value: float) -> float:
    """Rank 0's ``value`` on every rank (e.g. the learning rate of a time budget, which
    follows each rank's own clock: the ranks must step alike or their weights drift)."""
    if not _current.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks (e.g. an epoch's training loss)."""
    if not _current.distributed:
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(total)
    return float(total.item()) / _current.world_size


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``medseg ARGV`` in ``nproc`` processes on this machine with torch's elastic
    launcher (what ``torchrun --standalone --nproc-per-node N -m medseg ARGV`` does, and what
    ``medseg train --nproc N`` does); returns 0, 2 when a process stopped at a user error
    (which it printed), else 1."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // nproc)))
    # the processes report their own errors in one line; the launcher's log would repeat them
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    # the launcher's own files (error files of the processes) go where nothing is left behind
    with tempfile.TemporaryDirectory(prefix="medseg-torchrun-") as launcher_files:
        config = LaunchConfig(
            min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
            rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
            logs_specs=DefaultLogsSpecs(log_dir=launcher_files),
        )  # fmt: skip
        try:
            elastic_launch(config, sys.executable)("-m", "medseg", *argv)
        except ChildFailedError as exc:
            codes = [failure.exitcode for failure in exc.failures.values()]
            return 2 if 2 in codes else 1
    return 0
