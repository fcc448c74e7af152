"""Deterministic case-wise splits: k folds of case identifiers, the same as nnU-Net's, and
nnU-Net's ``splits_final.json`` read back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medseg.errors import ConfigError, DatasetError, located
from medseg.io import read_json_file
from medseg.io.limits import check_input_file

SPLIT_SEED = 12345


def kfold_splits(
    case_ids: Sequence[str], n_folds: int = 5, seed: int = SPLIT_SEED
) -> list[tuple[list[str], list[str]]]:
    """Split case identifiers into ``n_folds`` (train, validation) pairs, exactly as nnU-Net
    v2 does: its ``generate_crossval_split`` over the sorted identifiers with seed 12345,
    i.e. scikit-learn's ``KFold(n_folds, shuffle=True, random_state=seed)`` — the indices
    shuffled by NumPy's legacy ``RandomState(seed)``, cut into consecutive folds of
    ``n // k`` cases (one more for the first ``n % k`` folds). So a fold K trained by
    medseg holds out the cases nnU-Net's fold K holds out, and the results compare.

    The order depends only on the sorted identifiers and ``seed``, never on file-system
    order; every case is in exactly one validation fold; both lists come sorted.

    Examples
    --------
    >>> folds = kfold_splits([f"c{i}" for i in range(10)], n_folds=5)
    >>> len(folds), len(folds[0][1])
    (5, 2)
    """
    ids = sorted(case_ids)
    if n_folds < 2:
        raise ConfigError(f"need at least 2 folds, got {n_folds}")
    if len(ids) < n_folds:
        raise ConfigError(f"{len(ids)} cases cannot be split into {n_folds} folds")
    order = np.arange(len(ids))
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_folds, len(ids) // n_folds)
    sizes[: len(ids) % n_folds] += 1
    splits, start = [], 0
    for size in sizes:
        held = set(order[start : start + size].tolist())
        start += size
        val = [ids[i] for i in range(len(ids)) if i in held]
        train = [ids[i] for i in range(len(ids)) if i not in held]
        splits.append((train, val))
    return splits


def read_splits(path: Path, case_ids: list[str]) -> list[tuple[list[str], list[str]]]:
    """nnU-Net's ``splits_final.json``: a list of ``{"train": [...], "val": [...]}``, every
    case named one of ``case_ids``; returns the (train, validation) pairs, sorted."""
    check_input_file(path, DatasetError)
    raw = read_json_file(path, DatasetError)
    known = set(case_ids)
    if not isinstance(raw, list) or not raw:
        raise DatasetError(located(path, "want a list of {'train': [...], 'val': [...]}"))
    splits = []
    for k, fold in enumerate(raw):
        if not isinstance(fold, dict) or not {"train", "val"} <= set(fold):
            raise DatasetError(located(path, f"fold {k}: want 'train' and 'val' lists"))
        train, val = [str(c) for c in fold["train"]], [str(c) for c in fold["val"]]
        unknown = sorted((set(train) | set(val)) - known)
        if unknown or set(train) & set(val) or not train or not val:
            problem = f"unknown case {unknown[0]!r}" if unknown else "empty or overlapping"
            raise DatasetError(located(path, f"fold {k}: {problem}"))
        splits.append((sorted(train), sorted(val)))
    return splits


def train_val_split(
    case_ids: Sequence[str], fold: int = 0, n_folds: int = 5, seed: int = SPLIT_SEED
) -> tuple[list[str], list[str]]:
    """The (train, validation) case identifiers of one fold of `kfold_splits`."""
    if not 0 <= fold < n_folds:
        raise ConfigError(f"fold {fold} is out of range for {n_folds} folds")
    return kfold_splits(case_ids, n_folds, seed)[fold]
