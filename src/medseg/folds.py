"""Which folders of a run hold cross-validation's predictions (a leaf: pathlib only).

Training writes them, and post-processing (numpy only, no torch), calibration and the
cross-validation summary read them, so the rule lives below all of them.
"""

from __future__ import annotations

from pathlib import Path


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
    return sorted(numbered, key=fold_number)


def fold_number(validation_folder: Path) -> int:
    """The fold K of a ``fold_K/validation`` folder that `cross_validation_folders` found.

    Examples
    --------
    >>> fold_number(Path("run/fold_12/validation"))
    12
    """
    return int(validation_folder.parent.name[5:])
