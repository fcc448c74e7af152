"""The service's persistent state: one SQLite database, ``DATA/medseg.sqlite``.

Tables: ``jobs`` (one row per job: owner, model, state, progress, timings, error, the claim of
the worker running it), ``events`` (every state change, for audits and the exactly-once
check) and ``keys`` (API keys, `medseg.serve.keys`). Every process (the web server and each
worker) opens its own connection; WAL mode lets readers and one writer work at once.

A job is claimed by one worker at a time with a fresh claim token; finishing it needs that
token (`JobStore.finish`), so a worker whose job was handed to another after a restart can
never complete it a second time. `JobStore.requeue_interrupted` runs at start-up: jobs that
were running when the server died are queued again.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATABASE = "medseg.sqlite"
#: The states a job passes through; "done", "failed", "cancelled" and "expired" are final.
STATES = ("queued", "running", "done", "failed", "cancelled", "expired")
#: A job whose worker died this many times is failed instead of queued again.
MAX_ATTEMPTS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    input TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    bytes INTEGER NOT NULL,
    state TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    claim TEXT,
    worker INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
CREATE TABLE IF NOT EXISTS events (
    job TEXT NOT NULL, event TEXT NOT NULL, time REAL NOT NULL, detail TEXT
);
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created REAL NOT NULL,
    revoked REAL
);
"""


def connect(data_dir: Path) -> sqlite3.Connection:
    """A connection to ``data_dir``'s database (created with its tables when new)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        data_dir / DATABASE, timeout=30.0, isolation_level=None, check_same_thread=False
    )
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(_SCHEMA)
    return connection


def new_job_id() -> str:
    """A fresh, unguessable job id (16 hex digits)."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Job:
    """One row of ``jobs``."""

    id: str
    owner: str
    model: str
    kind: str
    input: str
    options: dict[str, Any]
    bytes: int
    state: str
    progress: float
    attempts: int
    created: float
    started: float | None
    finished: float | None
    error: str | None
    claim: str | None = None
    worker: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        """The job of a database row."""
        values = dict(row)
        values["options"] = json.loads(values["options"])
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """What ``GET /jobs/{id}`` answers (no claim token, no owner secret)."""
        seconds = None
        if self.started is not None and self.finished is not None:
            seconds = round(self.finished - self.started, 3)
        return {
            "id": self.id, "state": self.state, "progress": round(self.progress, 3),
            "model": self.model, "owner": self.owner, "input_kind": self.kind,
            "bytes": self.bytes, "created": self.created, "started": self.started,
            "finished": self.finished, "seconds": seconds, "error": self.error,
            "attempts": self.attempts, "options": self.options,
        }  # fmt: skip


class JobStore:
    """The job queue on one connection."""

    def __init__(self, data_dir: Path) -> None:
        self.connection = connect(data_dir)

    def add(self, job_id: str, owner: str, model: str, kind: str, input_name: str, size: int,
            options: dict[str, Any] | None = None) -> None:  # fmt: skip
        """Queue the job ``job_id`` (from `new_job_id`, its input already stored)."""
        now = time.time()
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.execute(
                "INSERT INTO jobs (id, owner, model, kind, input, options, bytes, state, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                (job_id, owner, model, kind, input_name, json.dumps(options or {}), size, now),
            )
            self._event(job_id, "queued", now)

    def get(self, job_id: str) -> Job | None:
        """The job, or None."""
        row = self.connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else Job.from_row(row)

    def list(self, owner: str | None = None, limit: int = 1000) -> list[Job]:
        """The newest jobs first, of ``owner`` only unless None."""
        query, args = "SELECT * FROM jobs", ()
        if owner is not None:
            query, args = query + " WHERE owner = ?", (owner,)
        rows = self.connection.execute(query + " ORDER BY created DESC LIMIT ?", (*args, limit))
        return [Job.from_row(r) for r in rows]

    def claim(self, models: list[str], worker: int) -> Job | None:
        """Take the oldest queued job of one of ``models`` for the worker process ``worker``
        (its pid), or None."""
        token = secrets.token_hex(8)
        marks = ",".join("?" * len(models))
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            row = self.connection.execute(
                f"SELECT id FROM jobs WHERE state = 'queued' AND model IN ({marks}) "
                "ORDER BY created LIMIT 1",
                models,
            ).fetchone()
            if row is None:
                return None
            now = time.time()
            self.connection.execute(
                "UPDATE jobs SET state = 'running', claim = ?, worker = ?, started = ?, "
                "progress = 0, attempts = attempts + 1 WHERE id = ?",
                (token, worker, now, row["id"]),
            )
            self._event(row["id"], "running", now)
        return self.get(row["id"])

    def progress(self, job: Job, value: float) -> None:
        """Record progress (0..1) of a job this worker holds."""
        self.connection.execute(
            "UPDATE jobs SET progress = ? WHERE id = ? AND claim = ? AND state = 'running'",
            (float(value), job.id, job.claim),
        )

    def still_mine(self, job: Job) -> bool:
        """Whether this worker's claim on ``job`` stands (not cancelled, not handed on)."""
        row = self.connection.execute(
            "SELECT 1 FROM jobs WHERE id = ? AND claim = ? AND state = 'running'",
            (job.id, job.claim),
        ).fetchone()
        return row is not None

    def finish(self, job: Job, error: str | None = None) -> bool:
        """Mark the job done (or failed with ``error``) if this worker's claim still stands;
        returns whether it did. This is the only way to "done": exactly once per job."""
        state = "failed" if error else "done"
        now = time.time()
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            changed = self.connection.execute(
                "UPDATE jobs SET state = ?, progress = ?, finished = ?, error = ?, claim = NULL "
                "WHERE id = ? AND claim = ? AND state = 'running'",
                (state, 1.0 if state == "done" else 0.0, now, error, job.id, job.claim),
            ).rowcount
            if changed:
                self._event(job.id, state, now, error)
        return bool(changed)

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; returns whether it was."""
        now = time.time()
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            changed = self.connection.execute(
                "UPDATE jobs SET state = 'cancelled', finished = ?, claim = NULL "
                "WHERE id = ? AND state IN ('queued', 'running')",
                (now, job_id),
            ).rowcount
            if changed:
                self._event(job_id, "cancelled", now)
        return bool(changed)

    def requeue_interrupted(self) -> int:
        """At start-up: queue the jobs that were running again (failed after
        `MAX_ATTEMPTS`); returns how many were queued."""
        now = time.time()
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            rows = self.connection.execute(
                "SELECT id, attempts FROM jobs WHERE state = 'running'"
            ).fetchall()
            for row in rows:
                self._requeue(row["id"], row["attempts"], now)
        return sum(1 for r in rows if r["attempts"] < MAX_ATTEMPTS)

    def requeue_worker(self, worker: int) -> None:
        """Queue again the job the dead worker process ``worker`` was running."""
        now = time.time()
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            rows = self.connection.execute(
                "SELECT id, attempts FROM jobs WHERE worker = ? AND state = 'running'", (worker,)
            ).fetchall()
            for row in rows:
                self._requeue(row["id"], row["attempts"], now)

    def _requeue(self, job_id: str, attempts: int, now: float) -> None:
        if attempts >= MAX_ATTEMPTS:
            error = f"the worker stopped {attempts} times on this job"
            self.connection.execute(
                "UPDATE jobs SET state = 'failed', claim = NULL, finished = ?, error = ? "
                "WHERE id = ?",
                (now, error, job_id),
            )
            self._event(job_id, "failed", now, error)
        else:
            self.connection.execute(
                "UPDATE jobs SET state = 'queued', claim = NULL, worker = NULL, progress = 0 "
                "WHERE id = ?",
                (job_id,),
            )
            self._event(job_id, "requeued", now)

    def expire(self, before: float) -> list[str]:
        """Mark finished jobs older than ``before`` expired; returns their ids."""
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            rows = self.connection.execute(
                "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') "
                "AND finished < ?",
                (before,),
            ).fetchall()
            now = time.time()
            for row in rows:
                self.connection.execute(
                    "UPDATE jobs SET state = 'expired' WHERE id = ?", (row["id"],)
                )
                self._event(row["id"], "expired", now)
        return [r["id"] for r in rows]

    def completions(self, job_id: str) -> int:
        """How many times ``job_id`` reached "done" (1 at most, by construction)."""
        row = self.connection.execute(
            "SELECT COUNT(*) FROM events WHERE job = ? AND event = 'done'", (job_id,)
        ).fetchone()
        return int(row[0])

    def _event(self, job_id: str, event: str, now: float, detail: str | None = None) -> None:
        self.connection.execute(
            "INSERT INTO events (job, event, time, detail) VALUES (?, ?, ?, ?)",
            (job_id, event, now, detail),
        )
