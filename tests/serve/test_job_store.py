"""The job queue: claims, exactly-once completion, restarts, cancellation, expiry."""

from __future__ import annotations

from medseg.serve.store import MAX_ATTEMPTS, JobStore, new_job_id


def _queue(store: JobStore, model: str = "hippo", owner: str = "alice") -> str:
    job_id = new_job_id()
    store.add(job_id, owner, model, "nifti", "input.nii.gz", 123, {"tta": False})
    return job_id


def test_jobs_are_claimed_oldest_first_by_one_worker_only(tmp_path):
    store, other = JobStore(tmp_path), JobStore(tmp_path)  # two processes' connections
    first, second = _queue(store), _queue(store)
    _queue(store, model="liver")
    a, b = store.claim(["hippo"], 1), other.claim(["hippo"], 2)
    assert (a.id, b.id) == (first, second) and a.state == b.state == "running"
    assert store.claim(["hippo"], 1) is None  # the liver job waits for a liver worker
    assert a.claim != b.claim and a.attempts == 1


def test_a_job_completes_once_even_if_its_old_worker_finishes_after_a_restart(tmp_path):
    store = JobStore(tmp_path)
    job_id = _queue(store)
    stale = store.claim(["hippo"], 1)
    assert JobStore(tmp_path).requeue_interrupted() == 1  # the server restarted
    fresh = store.claim(["hippo"], 2)
    assert fresh.id == job_id and fresh.attempts == 2
    assert not store.still_mine(stale) and store.still_mine(fresh)
    assert store.finish(fresh) and not store.finish(stale)
    assert store.get(job_id).state == "done" and store.completions(job_id) == 1
    assert not store.finish(fresh)  # and never twice


def test_a_job_that_keeps_killing_its_worker_fails_after_the_last_attempt(tmp_path):
    store = JobStore(tmp_path)
    job_id = _queue(store)
    for attempt in range(MAX_ATTEMPTS):
        job = store.claim(["hippo"], 100 + attempt)
        assert job is not None and job.attempts == attempt + 1
        store.requeue_worker(100 + attempt)  # the worker died
    job = store.get(job_id)
    assert job.state == "failed" and "stopped 3 times" in job.error
    assert store.claim(["hippo"], 7) is None


def test_cancelled_and_failed_jobs_and_expiry(tmp_path):
    store = JobStore(tmp_path)
    queued, running = _queue(store), _queue(store)
    job = store.claim(["hippo"], 1)
    assert job.id == queued
    assert store.cancel(running) and not store.cancel(running)
    assert store.finish(job, "input: not an image")
    failed = store.get(queued)
    assert failed.state == "failed" and failed.error == "input: not an image"
    assert failed.public()["seconds"] is not None and "claim" not in failed.public()
    assert sorted(store.expire(before=failed.finished + 1)) == sorted([queued, running])
    assert {store.get(j).state for j in (queued, running)} == {"expired"}


def test_listing_is_per_owner(tmp_path):
    store = JobStore(tmp_path)
    mine, theirs = _queue(store, owner="alice"), _queue(store, owner="bob")
    assert [j.id for j in store.list("alice")] == [mine]
    assert {j.id for j in store.list()} == {mine, theirs}
