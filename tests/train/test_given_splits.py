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
