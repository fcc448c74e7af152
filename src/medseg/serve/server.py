"""``medseg serve``: the web server process, its worker processes and the housekeeping.

`serve` queues again the jobs that were running when a previous server died, starts
``workers`` worker processes (`medseg.serve.worker`; each loads every model once), watches
them (a worker that dies has its job queued again and is replaced), deletes results older
than the retention time, and runs the API (`medseg.serve.app`) on uvicorn until Ctrl-C.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path

from medseg.errors import ConfigError, RunFolderError, located
from medseg.parallel import available_cores
from medseg.serve.store import JobStore
from medseg.serve.uploads import Limits
from medseg.serve.worker import job_folder, log_to_stderr, run_worker

LOG = logging.getLogger("medseg.serve")
#: Seconds between the housekeeping rounds (dead workers, expired results).
HOUSEKEEPING_SECONDS = 1.0


def parse_models(specs: list[str]) -> dict[str, Path]:
    """``RUN`` or ``NAME=RUN`` arguments as model names and run folders (a name defaults to
    the run folder's name); each must be a segmentation run.

    Examples
    --------
    >>> parse_models(["runs/hippo", "liver=runs/ct_liver_v2"])  # doctest: +SKIP
    {'hippo': PosixPath('runs/hippo'), 'liver': PosixPath('runs/ct_liver_v2')}
    """
    from medseg.runs.plan import Plan

    models: dict[str, Path] = {}
    for spec in specs:
        name, _, run = spec.rpartition("=") if "=" in spec else (None, "", spec)
        run_dir = Path(run)
        name = name or run_dir.resolve().name
        if name in models:
            raise ConfigError(f"two models named {name!r}: name them with NAME=RUN")
        if not run_dir.is_dir():
            raise RunFolderError(located(run_dir, "run folder not found"))
        Plan.load(run_dir)  # a segmentation run, readable
        models[name] = run_dir
    if not models:
        raise ConfigError("give at least one run folder to serve")
    return models


class WorkerPool:
    """``count`` worker processes, replaced when they die."""

    def __init__(self, data_dir: Path, models: dict[str, Path], device: str, count: int) -> None:
        self.data_dir, self.models, self.device, self.count = data_dir, models, device, count
        self.threads = max(1, available_cores() // count)
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def start(self) -> None:
        """Start the workers."""
        self.processes = [self._start_one() for _ in range(self.count)]

    def _start_one(self):
        process = self.context.Process(
            target=run_worker,
            args=(self.data_dir, self.models, self.device, self.threads, os.getpid()),
            daemon=True,
        )
        process.start()
        return process

    def alive(self) -> int:
        """How many workers are running."""
        return sum(p.is_alive() for p in self.processes)

    def replace_dead(self, store: JobStore) -> None:
        """Queue again the job of each dead worker and start another in its place."""
        for k, process in enumerate(self.processes):
            if not process.is_alive():
                LOG.warning("worker %d stopped (exit code %s): restarting it", process.pid,
                            process.exitcode)  # fmt: skip
                store.requeue_worker(process.pid)
                self.processes[k] = self._start_one()

    def stop(self) -> None:
        """Stop every worker."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=10)


def serve(
    models: dict[str, Path],
    data_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    device: str = "auto",
    retention_hours: float = 24.0,
    limits: Limits | None = None,
) -> None:
    """Serve ``models`` until interrupted (see the module text)."""
    try:
        import uvicorn

        from medseg.serve.app import ServiceState, create_app
    except ImportError as exc:
        raise ConfigError(f"medseg serve needs {exc.name}: pip install 'medseg[serve]'") from None
    log_to_stderr()
    data_dir = Path(data_dir)
    store = JobStore(data_dir)
    requeued = store.requeue_interrupted()
    if requeued:
        LOG.info("%d interrupted job(s) queued again", requeued)
    pool = WorkerPool(data_dir, models, device, workers)
    pool.start()
    state = ServiceState(data_dir, models, limits or Limits(), workers_alive=pool.alive)
    stop = threading.Event()
    keeper = threading.Thread(
        target=_housekeeping, args=(data_dir, pool, retention_hours * 3600, stop), daemon=True
    )
    keeper.start()
    config = uvicorn.Config(create_app(state), host=host, port=port, log_level="warning",
                            access_log=False)  # fmt: skip
    LOG.info("serving %s on http://%s:%d (docs at /docs)", ", ".join(models), host, port)
    try:
        uvicorn.Server(config).run()
    finally:
        stop.set()
        pool.stop()


def _housekeeping(data_dir: Path, pool: WorkerPool, retention: float, stop: threading.Event):
    store = JobStore(data_dir)  # this thread's own connection
    while not stop.wait(HOUSEKEEPING_SECONDS):
        pool.replace_dead(store)
        for job_id in store.expire(time.time() - retention):
            shutil.rmtree(job_folder(data_dir, job_id), ignore_errors=True)
            LOG.info("job %s: expired, its files deleted", job_id)
