"""Atomic file writes: a reader never sees a half-written file.

Temporary files and folders are hidden and carry the writer's process id
(``.name.tmpPID.suffix``, ``.name.buildingPID``), so that `remove_stale_temporaries` can
delete what a killed process left behind without touching a running writer's files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from medseg.errors import OutputError, located

#: Write failures that are the machine's (full disk, quota, read-only, permission), reported
#: as `OutputError` naming the target file.
WRITE_FAILURES = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}

#: Hidden temporaries of medseg's writers: the process id that made them is group 1.
TEMPORARY_NAME = re.compile(r"^\..+\.(?:tmp|building)(\d+)")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary name keeps the full suffix (``.nii.gz``, ``.png``) so that writers which
    choose the format by extension still work. On any exception the temporary file is removed
    and ``path`` is left untouched.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    stem, dot, suffix = name.partition(".")
    tmp = path.with_name(f".{stem}.tmp{os.getpid()}{dot}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in WRITE_FAILURES:  # the machine's problem: say which file it hit
            raise OutputError(located(path, exc.strerror or str(exc))) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a hidden staging folder beside ``path`` that becomes ``path`` only if the block
    succeeds; ``path`` must be missing or an empty folder. On any exception the staging
    folder is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "dataset"
    >>> with atomic_folder(target) as staging:
    ...     _ = (staging / "a.txt").write_text("a")
    >>> sorted(p.name for p in target.iterdir())
    ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    staging = path.with_name(f".{path.name}.building{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if path.exists():
            path.rmdir()  # an empty folder only: anything else is an OSError, nothing lost
        os.replace(staging, path)
    except OSError as exc:
        if exc.errno in WRITE_FAILURES:
            raise OutputError(located(path, exc.strerror or str(exc))) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries (`TEMPORARY_NAME`) in ``folder`` whose writer is no longer
    running, and return them; a missing folder has none.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / ".case.tmp999999999.nii.gz").write_bytes(b"")  # no such process
    >>> [p.name for p in remove_stale_temporaries(folder)]
    ['.case.tmp999999999.nii.gz']
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        match = TEMPORARY_NAME.match(path.name)
        if match is None or _running(int(match.group(1))):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id exists (ours included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False  # gone, or an id no process can have
    except PermissionError:
        return True  # another user's process
    return True
