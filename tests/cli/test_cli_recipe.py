"""The Stage 4 command line: cross-validation, automatic post-processing, ensembles with
mirroring and probabilities, and the errors of the new flags."""

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.io import read_image

pytestmark = pytest.mark.slow


def test_cross_validation_postprocess_and_ensemble_prediction(run_cli, tmp_path: Path):
    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=2, shape=(40, 40))
    run = tmp_path / "run"
    train = ["--quiet", "train", data, "--out", run, "--cross-validation", "--epochs", "1"]
    code, out, err = run_cli([*train, "--iterations-per-epoch", "2"])
    assert code == 0, err
    assert "Cross-validation" in out
    assert sorted(p.name for p in run.glob("fold_*")) == [f"fold_{k}" for k in range(5)]
    summary = json.loads((run / "cross_validation" / "summary.json").read_text())
    assert summary["cases"] == 5

    code, out, err = run_cli(["--quiet", "postprocess", "--auto", run])
    assert code == 0, err
    choice = json.loads((run / "postprocessing.json").read_text())
    assert (run / "postprocessing.json").is_file() and choice

    preds = tmp_path / "preds"
    code, out, err = run_cli(
        ["--quiet", "predict", run, data / "imagesTs", "--out", preds, "--tta",
         "--save-probabilities", "--fold", "0", "--fold", "3"]
    )  # fmt: skip
    assert code == 0, err
    labels = read_image(preds / "phantom_005.png")
    with np.load(preds / "phantom_005.npz") as saved:
        assert saved["probabilities"].shape == (4, *labels.spatial_shape)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fine-tune-lr", "0.001"], "--fine-tune-lr needs --init-from"),
        (["--freeze-encoder"], "--freeze-encoder needs --init-from"),
        (["--deterministic", "--minutes", "1"], "--deterministic needs --epochs"),
        (["--init-from", "/nonexistent/run"], "no such file or folder"),
    ],
)
def test_flag_errors_are_one_line_with_exit_code_2(run_cli, phantom2d, tmp_path, args, message):
    code, out, err = run_cli(["train", phantom2d, "--out", tmp_path / "run", *args])
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_fold_must_be_a_number_or_all(run_cli, phantom2d, tmp_path):
    code, _, err = run_cli(["train", phantom2d, "--out", tmp_path / "run", "--fold", "some"])
    assert code == 2 and "fold number or all" in err


def test_postprocess_without_cross_validation_predictions(run_cli, untrained_run_dir):
    code, _, err = run_cli(["postprocess", "--auto", untrained_run_dir])
    assert code == 2 and str(untrained_run_dir) in err
