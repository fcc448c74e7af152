"""Which folders of a run hold cross-validation's predictions and a fold's models (a leaf:
pathlib only).

Training writes them, and post-processing (numpy only, no torch), calibration and the
cross-validation summary read them, so the rule lives below all of them.
"""

from __future__ import annotations

from pathlib import Path


def cross_validation_folders(run_dir: Path) -> list[Path]:
    """The ``fold_K/validation`` folders of a run's numbered folds, in fold order: each fold's
    held-out cases as cross-validation predicted them (by the fold's model and its
    `member_dirs`). ``fold_all_search`` validates fold 0's cases again
    (``train/held_out.py``) and is not among them.

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


def member_dirs(run_dir: Path, fold: int | str) -> list[Path]:
    """The further models of fold ``fold`` (``fold_K_1``, ``fold_K_2``, ... beside
    ``fold_K``): trained with the time a capped budget left over (``train/ensemble.py``),
    in order. ``fold_all_search`` is not among them.

    Examples
    --------
    >>> member_dirs(Path("no/such/run"), "all")
    []
    """
    prefix = f"fold_{fold}_"
    found = (p for p in run_dir.glob(f"{prefix}*") if p.is_dir())
    numbered = (p for p in found if p.name[len(prefix) :].isdigit())
    return sorted(numbered, key=lambda p: int(p.name[len(prefix) :]))


def first_model_dir(model_dir: Path) -> Path:
    """The folder of the first model of the fold a model folder belongs to: ``fold_K`` for
    its further model ``fold_K_1`` (see `member_dirs`), else the folder itself.

    Examples
    --------
    >>> [first_model_dir(Path(n)).name for n in ("fold_0_2", "fold_all_1", "fold_12")]
    ['fold_0', 'fold_all', 'fold_12']
    >>> first_model_dir(Path("fold_all_search")).name
    'fold_all_search'
    """
    parts = model_dir.name.removeprefix("fold_").split("_")
    if len(parts) == 2 and parts[1].isdigit():
        return model_dir.with_name(f"fold_{parts[0]}")
    return model_dir
