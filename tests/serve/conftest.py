"""A tiny trained run for the DICOM node tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.train import TrainOptions, train_run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("node_run")
    data = write_phantom_dataset(root / "ds", n_train=5, n_test=1, dim=3, shape=(32, 32, 10))
    settings = {"preprocessing.target_spacing": [3.0, 3.0, 6.5]}
    train_run(
        data,
        root / "run",
        TrainOptions(epochs=1, iterations_per_epoch=2, quiet=True, settings=settings),
    )
    return root / "run"
