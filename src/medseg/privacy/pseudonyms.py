"""The secret behind de-identification: keyed UIDs, pseudonyms and date shifts.

Everything that replaces an identity is an HMAC-SHA256 of it under one secret key, so the same
input gets the same replacement in every file and every run with that key (references between
series, SEG and RTSTRUCT still resolve) and nobody without the key can go back. Pseudonyms can
also come from a mapping file the user keeps (``patient_id,pseudonym`` rows); new patients are
added to it.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
from pathlib import Path

from medseg.errors import ConfigError, located
from medseg.io.atomic import atomic_path, write_text_atomic
from medseg.io.csv_file import read_csv_rows
from medseg.io.limits import check_input_file

#: What a pseudonym may be: it names the patient's output folder, so no separators or dots.
PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: The longest a key or mapping file may be (they are small text files).
MAX_SETTINGS_FILE_BYTES = 64 * 2**20

#: Dates move back by 1 to this many days (one offset per patient).
MAX_SHIFT_DAYS = 3650

#: The well-known UIDs of the standard itself (SOP classes, transfer syntaxes, frames of
#: reference such as Talairach): never replaced.
STANDARD_UID_ROOT = "1.2.840.10008."


class Secret:
    """A de-identification key and what it derives.

    Examples
    --------
    >>> secret = Secret(b"k" * 32)
    >>> secret.uid("1.2.3") == secret.uid("1.2.3") != secret.uid("1.2.4")
    True
    >>> secret.uid("1.2.3").startswith("2.25.")
    True
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, uid: str) -> str:
        """The new UID for ``uid``: ``2.25.`` and a 128-bit integer (PS3.5 B.2), at most 44
        characters; standard UIDs come back unchanged."""
        uid = uid.strip().rstrip("\0")
        if uid.startswith(STANDARD_UID_ROOT):
            return uid
        return f"2.25.{int.from_bytes(self._digest('uid', uid)[:16], 'big')}"

    def pseudonym(self, patient: str) -> str:
        """A pseudonym for a patient nobody named in a mapping file: ``ANON`` and 12 letters."""
        letters = base64.b32encode(self._digest("patient", patient)).decode()[:12]
        return f"ANON{letters}"

    def shift_days(self, patient: str) -> int:
        """How many days this patient's dates move back (1 to `MAX_SHIFT_DAYS`)."""
        return 1 + int.from_bytes(self._digest("shift", patient)[:8], "big") % MAX_SHIFT_DAYS


def load_key(path: Path | None) -> tuple[bytes, bool]:
    """The key in ``path`` (created with 32 random bytes if missing), or a one-run key when
    ``path`` is None; also whether a new key was made."""
    if path is None:
        return secrets.token_bytes(32), True
    if not path.exists():
        text = secrets.token_hex(32)
        with atomic_path(path) as tmp:  # readable by its owner only, never half-written
            descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as stream:
                stream.write(text + "\n")
        return text.encode(), True
    text = _read_small(path).strip()
    if len(text) < 16:
        raise ConfigError(located(path, "a key file must hold at least 16 characters"))
    return text.encode(), False


class Pseudonyms:
    """Patient → pseudonym, from a mapping file when one is given, else from the key.

    ``mapping`` is a CSV file with a ``patient_id,pseudonym`` header; a patient not in it gets
    `Secret.pseudonym` and is added to it at once (atomically), so a killed run loses nothing.
    """

    def __init__(self, secret: Secret, mapping: Path | None = None) -> None:
        self._secret = secret
        self._mapping = mapping
        self._table: dict[str, str] = {}
        if mapping is not None and mapping.exists():
            self._table = _read_mapping(mapping)

    def __call__(self, patient: str) -> str:
        known = self._table.get(patient)
        if known is not None:
            return known
        pseudonym = self._secret.pseudonym(patient)
        if pseudonym in self._table.values():  # a user's pseudonym that happens to match
            raise ConfigError(f"pseudonym {pseudonym} would name two patients: edit the mapping")
        self._table[patient] = pseudonym
        if self._mapping is not None:
            _write_mapping(self._mapping, self._table)
        return pseudonym


def _read_small(path: Path) -> str:
    check_input_file(path, ConfigError)
    if path.stat().st_size > MAX_SETTINGS_FILE_BYTES:
        raise ConfigError(located(path, f"larger than {MAX_SETTINGS_FILE_BYTES} bytes"))
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(located(path, "not UTF-8 text")) from None


def _read_mapping(path: Path) -> dict[str, str]:
    rows = read_csv_rows(path, ConfigError)
    if not rows or [cell.strip() for cell in rows[0]] != ["patient_id", "pseudonym"]:
        raise ConfigError(located(path, "the first line must be 'patient_id,pseudonym'"))
    table: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 2 or not PSEUDONYM.match(row[1].strip()):
            raise ConfigError(
                located(
                    path,
                    f"line {number}: want 'patient_id,pseudonym' with a pseudonym of "
                    "1-64 letters, digits, '_' or '-'",
                )  # fmt: skip
            )
        patient, pseudonym = row[0], row[1].strip()
        if patient in table or pseudonym in table.values():
            raise ConfigError(located(path, f"line {number}: patient or pseudonym seen twice"))
        table[patient] = pseudonym
    return table


def _write_mapping(path: Path, table: dict[str, str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["patient_id", "pseudonym"])
    writer.writerows(sorted(table.items()))
    write_text_atomic(path, buffer.getvalue())
