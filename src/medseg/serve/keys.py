"""API keys of the service: created by ``medseg serve keys add``, stored only as a salted
scrypt hash, revocable.

A key reads ``msk_<id>_<secret>``: the id (8 hex digits) finds the row, the secret (43
URL-safe characters, 256 bits) is checked against the row's ``scrypt`` hash (n=2^14, r=8,
p=1, a 16-byte salt) in constant time. The key itself is printed once and never stored or
logged. Verified keys are remembered in memory for `CACHE_SECONDS` (by their SHA-256), so a
busy client does not pay the slow hash on every request; a revoked key stops working at its
next request all the same (the row is read every time).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from medseg.errors import ConfigError
from medseg.serve.store import connect

ROLES = ("user", "admin")
CACHE_SECONDS = 300.0
_KEY = re.compile(r"msk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 2**20, "dklen": 32}


@dataclass(frozen=True)
class Identity:
    """Who a valid key belongs to."""

    name: str
    role: str

    @property
    def admin(self) -> bool:
        """Whether the key may see and cancel every job."""
        return self.role == "admin"


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


class KeyStore:
    """The ``keys`` table of the service's database."""

    def __init__(self, data_dir: Path, connection: sqlite3.Connection | None = None) -> None:
        self.connection = connection or connect(data_dir)
        self._verified: dict[bytes, tuple[str, float]] = {}  # sha256(key) -> (id, when)

    def add(self, name: str, role: str = "user") -> str:
        """Create a key for ``name``; returns the key (shown once, stored only hashed)."""
        if not _NAME.fullmatch(name):
            raise ConfigError(f"key name {name!r}: use 1-64 letters, digits and . _ @ -")
        if role not in ROLES:
            raise ConfigError(f"role {role!r}: one of {', '.join(ROLES)}")
        key_id, secret, salt = (
            secrets.token_hex(4),
            secrets.token_urlsafe(32),
            secrets.token_bytes(16),
        )
        try:
            self.connection.execute(
                "INSERT INTO keys (id, name, role, salt, hash, created) VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, role, salt, _hash(secret, salt), time.time()),
            )
        except sqlite3.IntegrityError:
            raise ConfigError(
                f"a key named {name!r} exists: revoke it or choose another name"
            ) from None
        return f"msk_{key_id}_{secret}"

    def revoke(self, name: str) -> None:
        """Revoke ``name``'s key (it stays listed, marked revoked)."""
        changed = self.connection.execute(
            "UPDATE keys SET revoked = ? WHERE name = ? AND revoked IS NULL", (time.time(), name)
        ).rowcount
        if not changed:
            raise ConfigError(f"no active key named {name!r}")

    def list(self) -> list[dict[str, object]]:
        """Name, role, creation and revocation time of every key (never a hash)."""
        rows = self.connection.execute(
            "SELECT name, role, created, revoked FROM keys ORDER BY name"
        )
        return [dict(row) for row in rows]

    def verify(self, key: str) -> Identity | None:
        """The identity of a valid, unrevoked ``key``, else None."""
        match = _KEY.fullmatch(key or "")
        if match is None:
            return None
        key_id, secret = match.groups()
        row = self.connection.execute(
            "SELECT name, role, salt, hash FROM keys WHERE id = ? AND revoked IS NULL", (key_id,)
        ).fetchone()
        if row is None:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        cached = self._verified.get(digest)
        if cached is None or cached[0] != key_id or time.monotonic() - cached[1] > CACHE_SECONDS:
            if not hmac.compare_digest(_hash(secret, row["salt"]), row["hash"]):
                return None
            self._verified[digest] = (key_id, time.monotonic())
        return Identity(row["name"], row["role"])


class FailureLimiter:
    """At most ``limit`` failed authentications per client address in ``window`` seconds;
    beyond that the address is refused (429) until the window has passed."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has used up its failures."""
        now = time.monotonic()
        recent = [t for t in self._failures.get(address, []) if now - t < self.window]
        self._failures[address] = recent
        if not recent:
            self._failures.pop(address, None)
        return len(recent) >= self.limit

    def failed(self, address: str) -> None:
        """Count one failed authentication of ``address`` (addresses whose failures have all
        aged out are forgotten once many are held, so the table stays bounded)."""
        now = time.monotonic()
        if len(self._failures) > 10_000:
            stale = [a for a, times in self._failures.items() if now - times[-1] >= self.window]
            for old in stale:
                del self._failures[old]
        self._failures.setdefault(address, []).append(now)
