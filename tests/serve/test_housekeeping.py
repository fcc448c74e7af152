"""The server's housekeeping: expired jobs lose their files, dead workers are replaced and
their jobs queued again."""

from __future__ import annotations

import threading

from loopback import wait_for

from medseg.serve import server
from medseg.serve.store import JobStore, new_job_id
from medseg.serve.worker import job_folder


class _Pool:
    """A worker pool stand-in that records being asked to replace dead workers."""

    def __init__(self) -> None:
        self.rounds = 0

    def replace_dead(self, store: JobStore) -> None:
        self.rounds += 1


def test_finished_jobs_past_the_retention_lose_their_files(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "HOUSEKEEPING_SECONDS", 0.05)
    store = JobStore(tmp_path)
    done, queued = new_job_id(), new_job_id()
    for job_id in (done, queued):
        (job_folder(tmp_path, job_id) / "result").mkdir(parents=True)
        store.add(job_id, "alice", "hippo", "nifti", "input.nii.gz", 10)
    store.finish(store.claim(["hippo"], 1))
    pool, stop = _Pool(), threading.Event()
    keeper = threading.Thread(target=server._housekeeping, args=(tmp_path, pool, 0.0, stop))
    keeper.start()
    try:
        assert wait_for(lambda: not job_folder(tmp_path, done).exists(), 10)
    finally:
        stop.set()
        keeper.join(5)
    assert store.get(done).state == "expired" and pool.rounds > 0
    assert job_folder(tmp_path, queued).exists() and store.get(queued).state == "queued"
