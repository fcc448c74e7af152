"""auto_postprocess on a fake run folder: predictions of two folds, references in a dataset
folder found through the manifest or the argument, and each refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ConfigError, DatasetError, MedsegError, RunFolderError
from medseg.io import Image, spacing_affine, write_image
from medseg.postprocess import (
    POSTPROCESSING_FILE,
    apply_postprocessing,
    auto_postprocess,
    load_postprocessing,
)

SHAPE = (20, 20, 8)
SPACING = (1.0, 1.0, 2.5)
CASES = ["case_000", "case_001", "case_002", "case_003"]


def _write(path: Path, labels: np.ndarray, spacing: tuple[float, ...] = SPACING) -> None:
    write_image(Image(labels[None], spacing_affine(spacing)), path)


def _reference(index: int) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[4 + index % 2 : 12, 5:13, 2:6] = 1  # liver
    labels[13:17, 6:10, 3:6] = 2  # kidney, apart from the liver
    return labels


def _prediction(index: int) -> np.ndarray:
    labels = _reference(index)
    labels[0:2, 17:19, 0:2] = 1  # spurious liver
    labels[18, 0, 7] = 2  # spurious kidney
    return labels


@pytest.fixture
def run_and_dataset(tmp_path: Path) -> tuple[Path, Path]:
    dataset = tmp_path / "Dataset950_Fake"
    (dataset / "labelsTr").mkdir(parents=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan = {
        "label_values": [0, 1, 2],
        "label_names": ["background", "liver", "kidney"],
        "file_ending": ".nii.gz",
    }
    (run_dir / "plan.json").write_text(json.dumps(plan))
    (run_dir / "manifest.json").write_text(json.dumps({"dataset": str(dataset.resolve())}))
    for index, case in enumerate(CASES):
        _write(dataset / "labelsTr" / f"{case}.nii.gz", _reference(index))
        fold = run_dir / f"fold_{index % 2}" / "validation"
        _write(fold / f"{case}.nii.gz", _prediction(index))
    (run_dir / "fold_0" / "validation" / "summary.json").write_text("{}")  # not an image
    return run_dir, dataset


def test_auto_postprocess_chooses_from_all_folds_and_writes_the_file(
    run_and_dataset: tuple[Path, Path],
) -> None:
    run_dir, _ = run_and_dataset
    choice = auto_postprocess(run_dir, jobs=1, quiet=True)
    assert choice.cases == len(CASES)
    assert [(c.value, c.name) for c in choice.labels] == [(1, "liver"), (2, "kidney")]
    # the liver and the kidney lie apart: the whole-foreground step would delete the kidney
    assert choice.foreground_trial is not None and not choice.foreground_trial.accepted
    for label in choice.labels:
        assert label.operations[0].name == "keep_largest"
        assert label.mean_dice_after == pytest.approx(1.0)
        assert label.mean_dice_before < 1.0
    assert load_postprocessing(run_dir) == choice
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")], "temporary file left"
    cleaned = apply_postprocessing(_prediction(0), choice, SPACING)
    np.testing.assert_array_equal(cleaned, _reference(0))


def test_the_held_out_searchs_repeat_of_fold_zero_is_not_read(
    run_and_dataset: tuple[Path, Path],
) -> None:
    run_dir, _ = run_and_dataset
    search = run_dir / "fold_all_search" / "validation"  # fold 0's cases, another model
    _write(search / f"{CASES[0]}.nii.gz", np.zeros(SHAPE, np.uint8))
    choice = auto_postprocess(run_dir, jobs=1, quiet=True)
    assert choice.cases == len(CASES)
    assert all(label.mean_dice_after == pytest.approx(1.0) for label in choice.labels)


def test_dataset_argument_replaces_the_manifest(run_and_dataset: tuple[Path, Path]) -> None:
    run_dir, dataset = run_and_dataset
    (run_dir / "manifest.json").unlink()
    choice = auto_postprocess(run_dir, dataset_dir=dataset, jobs=1, quiet=True)
    assert choice.cases == len(CASES)


def test_worker_processes_give_the_same_choice(run_and_dataset: tuple[Path, Path]) -> None:
    run_dir, _ = run_and_dataset
    assert auto_postprocess(run_dir, jobs=2, quiet=True) == auto_postprocess(
        run_dir, jobs=1, quiet=True
    )


def test_unknown_dataset_folder_is_a_clear_error(run_and_dataset: tuple[Path, Path]) -> None:
    run_dir, dataset = run_and_dataset
    (run_dir / "manifest.json").unlink()
    with pytest.raises(ConfigError, match=r"run: the dataset folder is not recorded.*--dataset"):
        auto_postprocess(run_dir, quiet=True)
    (run_dir / "manifest.json").write_text(json.dumps({"dataset": str(dataset / "moved")}))
    with pytest.raises(ConfigError, match=r"manifest\.json: dataset folder .*moved.*--dataset"):
        auto_postprocess(run_dir, quiet=True)
    with pytest.raises(ConfigError, match="dataset folder not found"):
        auto_postprocess(run_dir, dataset_dir=dataset / "elsewhere", quiet=True)
    (dataset / "labelsTr").rename(dataset / "labels")
    with pytest.raises(DatasetError, match="labelsTr"):
        auto_postprocess(run_dir, dataset_dir=dataset, quiet=True)
    assert not (run_dir / POSTPROCESSING_FILE).exists()


def test_run_without_predictions_or_plan(run_and_dataset: tuple[Path, Path]) -> None:
    run_dir, _ = run_and_dataset
    for fold in ("fold_0", "fold_1"):
        for path in (run_dir / fold / "validation").glob("*.nii.gz"):
            path.unlink()
    with pytest.raises(RunFolderError, match=r"no cross-validation predictions.*train folds"):
        auto_postprocess(run_dir, quiet=True)
    (run_dir / "plan.json").unlink()
    with pytest.raises(RunFolderError, match="not a medseg run folder"):
        auto_postprocess(run_dir, quiet=True)


def test_problems_in_the_files_are_reported_and_nothing_is_written(
    run_and_dataset: tuple[Path, Path],
) -> None:
    run_dir, dataset = run_and_dataset
    wrong = run_dir / "fold_1" / "validation" / "case_001.nii.gz"
    _write(wrong, np.zeros((20, 20, 7), np.uint8))
    with pytest.raises(MedsegError, match=r"case_001\.nii\.gz: shape \(20, 20, 7\) differs"):
        auto_postprocess(run_dir, jobs=1, quiet=True)
    _write(wrong, _prediction(1))
    (dataset / "labelsTr" / "case_002.nii.gz").unlink()
    unknown = _prediction(3)
    unknown[0, 0, 0] = 7
    _write(run_dir / "fold_1" / "validation" / "case_003.nii.gz", unknown)
    with pytest.raises(MedsegError) as raised:
        auto_postprocess(run_dir, jobs=1, quiet=True)
    # the missing reference is found before any case is read
    assert "no reference" in str(raised.value) and "case_002" in str(raised.value)
    _write(dataset / "labelsTr" / "case_002.nii.gz", _reference(2))
    with pytest.raises(MedsegError, match=r"label values \[7\] are not in the run's plan"):
        auto_postprocess(run_dir, jobs=1, quiet=True)
    _write(run_dir / "fold_0" / "validation" / "case_003.nii.gz", _prediction(3))
    with pytest.raises(MedsegError, match="also predicted in"):
        auto_postprocess(run_dir, jobs=1, quiet=True)
    assert not (run_dir / POSTPROCESSING_FILE).exists()
