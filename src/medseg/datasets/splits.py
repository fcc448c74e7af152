"""Deterministic case-wise splits: k folds of case identifiers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medseg.errors import ConfigError

SPLIT_SEED = 12345


def kfold_splits(
    case_ids: Sequence[str], n_folds: int = 5, seed: int = SPLIT_SEED
) -> list[tuple[list[str], list[str]]]:
    """Split case identifiers into ``n_folds`` (train, validation) pairs.

    The order depends only on the sorted identifiers and ``seed``, never on file-system
    order, so the same folder always gives the same folds. Every case is in exactly one
    validation fold.

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
    order = np.random.default_rng(seed).permutation(len(ids))
    chunks = np.array_split(order, n_folds)
    splits = []
    for k in range(n_folds):
        val = sorted(ids[i] for i in chunks[k])
        train = sorted(ids[i] for j, chunk in enumerate(chunks) if j != k for i in chunk)
        splits.append((train, val))
    return splits


def train_val_split(
    case_ids: Sequence[str], fold: int = 0, n_folds: int = 5, seed: int = SPLIT_SEED
) -> tuple[list[str], list[str]]:
    """The (train, validation) case identifiers of one fold of `kfold_splits`."""
    if not 0 <= fold < n_folds:
        raise ConfigError(f"fold {fold} is out of range for {n_folds} folds")
    return kfold_splits(case_ids, n_folds, seed)[fold]
