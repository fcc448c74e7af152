"""Run folders under $MEDSEG_RESULTS / $nnUNet_results, as nnU-Net keeps its models."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.datasets.folder import find_dataset_folder
from medseg.errors import ConfigError
from medseg.runs.locations import default_run_folder, find_run_folder


@pytest.fixture
def no_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDSEG_RESULTS", raising=False)
    monkeypatch.delenv("nnUNet_results", raising=False)


def test_default_run_folder_is_under_results_by_dataset_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_results: None
) -> None:
    dataset = tmp_path / "raw" / "Dataset004_Hippocampus"
    dataset.mkdir(parents=True)
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "nnunet"))
    assert default_run_folder(dataset) == tmp_path / "nnunet/Dataset004_Hippocampus/medseg"
    monkeypatch.setenv("MEDSEG_RESULTS", str(tmp_path / "mine"))  # medseg's own wins
    assert default_run_folder(dataset) == tmp_path / "mine/Dataset004_Hippocampus/medseg"
    # a dataset named by its ID resolves to its folder's name
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    assert default_run_folder(find_dataset_folder("4")).parent.name == "Dataset004_Hippocampus"


def test_without_results_a_run_folder_must_be_given(tmp_path: Path, no_results: None) -> None:
    with pytest.raises(ConfigError, match="give --out RUN_DIR, or set MEDSEG_RESULTS"):
        default_run_folder(tmp_path)


def test_find_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_results) -> None:
    run = tmp_path / "results/Dataset004_Hippocampus/medseg"
    run.mkdir(parents=True)
    assert find_run_folder("Dataset004_Hippocampus/medseg") == Path("Dataset004_Hippocampus/medseg")
    monkeypatch.setenv("MEDSEG_RESULTS", str(tmp_path / "results"))
    assert find_run_folder("Dataset004_Hippocampus/medseg") == run
    assert find_run_folder("Dataset004_Hippocampus/other") == Path("Dataset004_Hippocampus/other")
    assert find_run_folder("../results/Dataset004_Hippocampus/medseg").parts[0] == ".."


def test_cli_train_without_out_or_results_asks_for_out(
    run_cli, phantom3d: Path, no_results: None
) -> None:
    code, _, err = run_cli(["train", phantom3d, "--epochs", "1"])
    assert code == 2 and "give --out RUN_DIR" in err


def test_cli_predict_finds_the_run_under_results(
    run_cli, untrained_run_writer, phantom3d: Path, tmp_path: Path, monkeypatch, no_results
) -> None:
    untrained_run_writer(tmp_path / "results/Dataset900_Phantom/medseg")
    monkeypatch.setenv("MEDSEG_RESULTS", str(tmp_path / "results"))
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        ["predict", "Dataset900_Phantom/medseg", phantom3d / "imagesTs", "--out", "preds"]
    )
    assert code == 0, err
    assert len(list((tmp_path / "preds").glob("*.nii.gz"))) == len(
        list((phantom3d / "imagesTs").iterdir())
    )
