"""Case-wise k-fold splits: deterministic, disjoint, complete, order-independent."""

from __future__ import annotations

import random

import pytest

from medseg.datasets import kfold_splits, train_val_split
from medseg.errors import ConfigError

IDS = [f"case_{i:03d}" for i in range(23)]


def test_splits_are_deterministic() -> None:
    assert kfold_splits(IDS) == kfold_splits(list(IDS))


@pytest.mark.parametrize("n_folds", [2, 3, 5, 23])
def test_folds_are_disjoint_and_cover_every_case(n_folds: int) -> None:
    folds = kfold_splits(IDS, n_folds=n_folds)
    assert len(folds) == n_folds
    seen: list[str] = []
    for train, val in folds:
        assert val, "every fold validates on at least one case"
        assert not set(train) & set(val)
        assert sorted(train + val) == sorted(IDS)
        assert len(set(train)) == len(train)
        seen += val
    assert sorted(seen) == sorted(IDS), "every case is in exactly one validation fold"
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= 1


def test_splits_do_not_depend_on_input_order() -> None:
    shuffled = list(IDS)
    random.Random(7).shuffle(shuffled)
    assert shuffled != IDS
    assert kfold_splits(shuffled) == kfold_splits(IDS)
    assert kfold_splits(tuple(reversed(IDS))) == kfold_splits(IDS)


def test_lists_are_sorted() -> None:
    for train, val in kfold_splits(IDS):
        assert train == sorted(train)
        assert val == sorted(val)


def test_split_is_shuffled_not_contiguous() -> None:
    _, val = kfold_splits(IDS, n_folds=5)[0]
    assert val != sorted(IDS)[: len(val)]


def test_the_seed_changes_the_split() -> None:
    assert kfold_splits(IDS, seed=1) != kfold_splits(IDS, seed=2)
    assert kfold_splits(IDS, seed=1) == kfold_splits(IDS, seed=1)


def test_train_val_split_is_one_fold_of_kfold_splits() -> None:
    folds = kfold_splits(IDS, n_folds=5)
    for fold in range(5):
        assert train_val_split(IDS, fold=fold, n_folds=5) == folds[fold]


def test_docstring_example() -> None:
    folds = kfold_splits([f"c{i}" for i in range(10)], n_folds=5)
    assert (len(folds), len(folds[0][1])) == (5, 2)


@pytest.mark.parametrize("n_folds", [0, 1])
def test_fewer_than_two_folds_is_an_error(n_folds: int) -> None:
    with pytest.raises(ConfigError, match="at least 2 folds"):
        kfold_splits(IDS, n_folds=n_folds)


def test_fewer_cases_than_folds_is_an_error() -> None:
    with pytest.raises(ConfigError, match="3 cases cannot be split into 5 folds"):
        kfold_splits(IDS[:3], n_folds=5)


@pytest.mark.parametrize("fold", [-1, 5, 6])
def test_fold_out_of_range_is_an_error(fold: int) -> None:
    with pytest.raises(ConfigError, match=f"fold {fold}"):
        train_val_split(IDS, fold=fold, n_folds=5)
