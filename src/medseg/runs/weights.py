"""Where a fold's trained weights (safetensors, never pickled) and validation predictions live
in a run folder."""

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


def cross_validation_folders(run_dir: Path) -> list[Path]:
    """The ``fold_K/validation`` folders of a run's numbered folds, in fold order: each fold's
    held-out cases as cross-validation predicted them. ``fold_all_search`` validates fold 0's
    cases again (``train/held_out.py``) and is not among them.

    Examples
    --------
    >>> cross_validation_folders(Path("no/such/run"))
    []
    """
    found = run_dir.glob("fold_*/validation")
    numbered = [p for p in found if p.parent.name[5:].isdigit() and p.is_dir()]
    return sorted(numbered, key=lambda p: int(p.parent.name[5:]))
