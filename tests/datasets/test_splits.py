"""Case-wise k-fold splits: deterministic, disjoint, complete, order-independent."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from medseg.datasets import kfold_splits, read_splits, train_val_split
from medseg.errors import ConfigError, DatasetError

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


def test_the_folds_are_nnunets_for_the_hippocampus_cases() -> None:
    """The fixture is nnU-Net v2's split of the 200 shared Hippocampus case ids, made by the
    call nnU-Net makes (``generate_crossval_split(sorted ids, seed=12345, n_splits=5)``, i.e.
    scikit-learn's ``KFold(5, shuffle=True, random_state=12345)``), recorded once."""
    recorded = json.loads((Path(__file__).parent / "nnunet_splits_hippocampus.json").read_text())
    ids = sorted(recorded[0]["train"] + recorded[0]["val"])
    assert len(ids) == 200
    assert kfold_splits(ids) == [(fold["train"], fold["val"]) for fold in recorded]


@pytest.mark.parametrize("n, k, seed", [(7, 5, 12345), (23, 3, 12345), (260, 5, 12345), (31, 5, 4)])
def test_the_folds_are_scikit_learns_kfold(n: int, k: int, seed: int) -> None:
    model_selection = pytest.importorskip("sklearn.model_selection")
    ids = sorted(f"case_{i:04d}" for i in range(n))
    expected = [
        ([ids[i] for i in train], [ids[i] for i in val])
        for train, val in model_selection.KFold(k, shuffle=True, random_state=seed).split(ids)
    ]
    assert kfold_splits(ids, k, seed) == expected


def test_a_bad_splits_final_json_is_named(tmp_path) -> None:
    path = tmp_path / "splits_final.json"
    path.write_text(json.dumps([{"train": ["a", "b"], "val": ["zz"]}]))
    with pytest.raises(DatasetError, match="fold 0: unknown case 'zz'"):
        read_splits(path, ["a", "b", "c"])
    path.write_text(json.dumps([{"train": ["a"], "val": ["a"]}]))
    with pytest.raises(DatasetError, match="empty or overlapping"):
        read_splits(path, ["a", "b"])
    path.write_text(json.dumps({"train": []}))
    with pytest.raises(DatasetError, match="want a list"):
        read_splits(path, ["a"])
