"""API keys: shown once, stored as a salted slow hash, revocable; failures rate-limited."""

from __future__ import annotations

import sqlite3

import pytest

from medseg.errors import ConfigError
from medseg.serve.keys import FailureLimiter, KeyStore
from medseg.serve.store import DATABASE


def test_a_key_verifies_until_revoked_and_only_its_hash_is_stored(tmp_path):
    store = KeyStore(tmp_path)
    key = store.add("alice")
    admin = store.add("ops", role="admin")
    assert store.verify(key).name == "alice" and not store.verify(key).admin
    assert store.verify(admin).admin
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify("") is None and store.verify("Bearer nonsense") is None
    secret = key.split("_", 2)[2]  # msk_<id>_<secret>; the secret itself may hold "_"
    assert len(secret) == 43
    raw = (tmp_path / DATABASE).read_bytes() + (tmp_path / f"{DATABASE}-wal").read_bytes()
    assert secret.encode() not in raw and key.encode() not in raw
    rows = sqlite3.connect(tmp_path / DATABASE).execute("SELECT salt, hash FROM keys").fetchall()
    assert len({salt for salt, _ in rows}) == 2 and all(len(h) == 32 for _, h in rows)
    KeyStore(tmp_path).revoke("alice")  # from another process, e.g. the CLI
    assert store.verify(key) is None  # the cache does not outlive a revocation
    assert [(r["name"], bool(r["revoked"])) for r in store.list()] == [
        ("alice", True), ("ops", False),
    ]  # fmt: skip


def test_bad_names_roles_and_duplicates_are_refused(tmp_path):
    store = KeyStore(tmp_path)
    store.add("alice")
    with pytest.raises(ConfigError, match="exists"):
        store.add("alice")
    with pytest.raises(ConfigError, match="key name"):
        store.add("../x")
    with pytest.raises(ConfigError, match="role"):
        store.add("bob", role="root")
    with pytest.raises(ConfigError, match="no active key"):
        store.revoke("carol")


def test_an_address_is_blocked_after_its_failures_for_the_window(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("medseg.serve.keys.time.monotonic", lambda: clock[0])
    limiter = FailureLimiter(limit=3, window=60.0)
    for _ in range(3):
        assert not limiter.blocked("10.0.0.1")
        limiter.failed("10.0.0.1")
    assert limiter.blocked("10.0.0.1") and not limiter.blocked("10.0.0.2")
    clock[0] += 61
    assert not limiter.blocked("10.0.0.1")
