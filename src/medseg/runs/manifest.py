"""``manifest.json``: what produced a run folder — versions, device, plan hash, seeds, the
dataset it was trained on and, per fold, how long each part took.

No patient data goes in: paths to the dataset and run folders, never case identifiers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

from medseg import __version__
from medseg.io import write_text_atomic
from medseg.runs.plan import PLAN_FILE

MANIFEST_FILE = "manifest.json"


def environment(device: torch.device) -> dict[str, Any]:
    """Versions and hardware that a result depends on."""
    return {
        "medseg": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The run folder's manifest, or an empty one."""
    path = run_dir / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}  # rewritten in full below; the folds' own logs still hold their history


def plan_hash(run_dir: Path) -> str:
    """SHA-256 of the run's ``plan.json``."""
    return hashlib.sha256((run_dir / PLAN_FILE).read_bytes()).hexdigest()


def record_fold(
    run_dir: Path,
    *,
    dataset: Path,
    device: torch.device,
    seed: int,
    deterministic: bool,
    fold: int | str,
    details: dict[str, Any],
) -> None:
    """Add (or replace) fold ``fold``'s entry and refresh the run-wide fields; processes
    training other folds of the run at the same time take turns (a lock file)."""
    with run_lock(run_dir):
        manifest = read_manifest(run_dir)
        manifest.update(
            {
                "dataset": str(dataset.resolve()),
                "plan_sha256": plan_hash(run_dir),
                "seed": seed,
                "deterministic": deterministic,
                "environment": environment(device),
                "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        )
        manifest.setdefault("folds", {})[str(fold)] = details
        write_text_atomic(run_dir / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """An exclusive lock on a run folder for the block, for processes that train folds of
    the same run at once (a hidden lock file; no lock where the platform has no
    ``fcntl``)."""
    if fcntl is None:
        yield
        return
    with open(Path(run_dir) / ".run.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
