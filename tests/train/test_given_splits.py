"""A dataset's own ``splits_final.json`` (nnU-Net's file) decides the folds of a run."""

from __future__ import annotations

import json

import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.errors import ConfigError
from medseg.train import TrainOptions, train_run


def _folds(ids, k):
    return [{"train": [c for j, c in enumerate(ids) if j % k != f],
             "val": [c for j, c in enumerate(ids) if j % k == f]} for f in range(k)]  # fmt: skip


def test_splits_final_json_is_used_and_its_fold_count_must_match(tmp_path):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(32, 32))
    ids = [f"phantom_{k:03d}" for k in range(6)]
    (data / "splits_final.json").write_text(json.dumps(_folds(ids, 3)))
    options = TrainOptions(epochs=1, iterations_per_epoch=1, quiet=True)
    with pytest.raises(ConfigError, match="3 folds, the plan 5"):
        train_run(data, tmp_path / "run", options)
    options = TrainOptions(epochs=1, iterations_per_epoch=1, quiet=True,
                           settings={"n_folds": 3})  # fmt: skip
    train_run(data, tmp_path / "run3", options, fold=1)
    written = json.loads((tmp_path / "run3" / "splits.json").read_text())
    assert [fold["validation"] for fold in written] == [f["val"] for f in _folds(ids, 3)]


def test_a_run_keeps_its_folds_and_splits_names_a_file(tmp_path, run_cli):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(32, 32))
    ids = [f"phantom_{k:03d}" for k in range(6)]
    (tmp_path / "mine.json").write_text(json.dumps(_folds(ids, 5)[::-1]))
    args = ["--quiet", "train", data, "--out", tmp_path / "run", "--epochs", "1",
            "--iterations-per-epoch", "1"]  # fmt: skip
    code, _, err = run_cli([*args, "--fold", "0", "--splits", tmp_path / "mine.json"])
    assert code == 0, err
    first = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert [f["validation"] for f in first] == [f["val"] for f in _folds(ids, 5)[::-1]]
    # a later fold of the same run keeps those folds, even without --splits
    code, _, err = run_cli([*args, "--fold", "1"])
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "splits.json").read_text()) == first
    code, _, err = run_cli([*args, "--fold", "2", "--splits", tmp_path / "other.json"])
    assert code == 2 and "other.json" in err
    (tmp_path / "other.json").write_text(json.dumps(_folds(ids, 5)))
    code, _, err = run_cli([*args, "--fold", "2", "--splits", tmp_path / "other.json"])
    assert code == 2 and "the run folder was trained on other folds" in err
    runs = tmp_path / "run" / "splits.json"
    runs.write_text(json.dumps([{"fold": 0, "train": ["x"], "validation": ["y"]}]))
    code, _, err = run_cli([*args, "--fold", "3"])
    assert code == 2 and "names other cases than the dataset has" in err
    for broken in ([], {"fold": 0}, [{"train": []}]):
        runs.write_text(json.dumps(broken))
        code, _, err = run_cli([*args, "--fold", "3"])
        assert code == 2 and "not a list of train/validation folds" in err, err
