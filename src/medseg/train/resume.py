"""The state a fold needs to continue after an interruption, saved after every epoch.

``fold_K/training_state.pt`` holds the network and optimiser state, the random generators
(sampler, augmentation, torch), the epoch, the iteration count, the time spent and the history.
It is written with `torch.save` under a temporary name and renamed, so a process killed at
any moment leaves either the previous state or the new one, and read back with
``torch.load(weights_only=True)``: plain tensors and containers only, nothing unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg.errors import RunFolderError, located
from medseg.io import atomic_path

STATE_FILE = "training_state.pt"
STATE_VERSION = 1


def numpy_generator_state(rng: np.random.Generator) -> str:
    """The state of a NumPy generator as JSON (it holds integers beyond 64 bits)."""
    return json.dumps(rng.bit_generator.state)


def restore_numpy_generator(rng: np.random.Generator, state: str) -> None:
    """Put a generator back into a state from `numpy_generator_state`."""
    rng.bit_generator.state = json.loads(state)


def save_training_state(fold_dir: Path, state: dict[str, Any]) -> None:
    """Write ``training_state.pt`` atomically."""
    with atomic_path(fold_dir / STATE_FILE) as tmp:
        torch.save({"version": STATE_VERSION, **state}, tmp)


def load_training_state(fold_dir: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read ``training_state.pt`` without unpickling (``weights_only=True``).

    Raises `RunFolderError` when it is missing or unreadable.
    """
    path = fold_dir / STATE_FILE
    if not path.is_file():
        raise RunFolderError(located(fold_dir, f"nothing to resume (no {STATE_FILE})"))
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, never a traceback
        raise RunFolderError(located(path, f"unreadable training state ({exc})")) from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise RunFolderError(located(path, "not a medseg training state of this version"))
    return state
