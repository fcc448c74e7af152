"""Where a fold's trained weights live in a run folder (safetensors, never pickled)."""

from __future__ import annotations

from pathlib import Path

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
