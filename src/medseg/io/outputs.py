"""Output paths are checked before any work starts, and leftovers of killed runs cleaned.

A command that would fail only at its first write (``--out`` naming an existing file, a place
that cannot be written, a full disk) fails at once with one line naming the path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from medseg.errors import OutputError, located
from medseg.io.atomic import remove_stale_temporaries

#: Free space below which an output place is refused before work starts.
MIN_FREE_BYTES = 16 * 2**20


def prepare_output_folder(path: str | Path) -> Path:
    """``path`` checked as a folder to write into (it may not exist yet), with temporaries of
    killed runs removed from it; `OutputError` naming it otherwise.

    Examples
    --------
    >>> prepare_output_folder(__file__)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    medseg.errors.OutputError: .../outputs.py: exists and is not a folder
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(located(path, "exists and is not a folder"))
    _check_writable(path)
    remove_stale_temporaries(path)
    return path


def check_output_file(path: str | Path) -> Path:
    """``path`` checked as a file to write (created or replaced); `OutputError` otherwise.

    Examples
    --------
    >>> check_output_file(Path(__file__).parent)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    medseg.errors.OutputError: .../io: is a folder, expected a file name
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(located(path, "is a folder, expected a file name"))
    _check_writable(path.parent if str(path.parent) else Path("."))
    remove_stale_temporaries(path.parent)
    return path


def _check_writable(path: Path) -> None:
    """The nearest existing folder at or above ``path`` must be writable with space left."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            raise OutputError(located(path, f"{existing} is a broken symbolic link"))
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(located(path, f"cannot be created: {existing} is a file"))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(located(path, f"cannot write into {existing} (permission denied)"))
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise OutputError(located(path, f"the disk is full ({free / 2**20:.1f} MiB free)"))
