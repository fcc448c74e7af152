"""Where a fold's trained weights live in a run folder (safetensors, never pickled), and the
networks loaded from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from medseg.errors import RunFolderError, located
from medseg.nn.checkpoint import load_weights

#: The weights of the epoch with the best smoothed validation Dice.
BEST_WEIGHTS = "model_best.safetensors"
#: The weights after the latest finished epoch (training resumes from these).
LATEST_WEIGHTS = "model_latest.safetensors"


def trained_weights(fold_dir: Path) -> Path | None:
    """The weights to predict with from ``fold_dir``: the best epoch's, else the latest's,
    else None (a fold that saved nothing yet).

    Examples
    --------
    >>> trained_weights(Path("no/such/fold")) is None
    True
    """
    for name in (BEST_WEIGHTS, LATEST_WEIGHTS):
        if (fold_dir / name).is_file():
            return fold_dir / name
    return None


def trained_networks(
    run_dir: Path, fold_dirs: Sequence[Path], build: Callable[[], nn.Module], device: torch.device
) -> list[nn.Module]:
    """One network (``build()``) per fold folder that holds weights, loaded and in evaluation
    mode on ``device``; `RunFolderError` if none does."""
    networks = []
    for fold_dir in fold_dirs:
        weights = trained_weights(fold_dir)
        if weights is None:
            continue
        network = build()
        load_weights(network, weights, device)
        networks.append(network.to(device).eval())
    if not networks:
        raise RunFolderError(located(run_dir, "holds no trained model (no fold_*/*.safetensors)"))
    return networks
