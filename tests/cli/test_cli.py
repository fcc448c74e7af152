"""The command line: version, help, and every user error giving one line and exit code 2.

No test here trains a network: each `train` case fails while the dataset is read and checked,
and the `no_training` guard turns any start of training into a test failure.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import medseg
from medseg.io import Image, read_image, write_image
from medseg.train import auto_config

TRAIN_OPTIONS = ["--epochs", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail (exit code 1, not 2) if any test here gets as far as training."""
    from medseg.train.trainer import Trainer

    def forbidden(self: Trainer) -> None:
        raise AssertionError("training started in an error-path test")

    monkeypatch.setattr(Trainer, "fit", forbidden)


def assert_user_error(result: tuple[int, str, str], *names: Path | str) -> str:
    """Exit code 2 and exactly one line on stderr, naming every one of ``names``."""
    code, _, err = result
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("medseg: error: ")
    for name in names:
        assert str(name) in lines[0]
    return lines[0]


# --- version and help -------------------------------------------------------------------


def test_version(run_cli) -> None:
    code, out, _ = run_cli(["--version"])
    assert code == 0
    assert out.strip() == f"medseg {medseg.__version__}"


@pytest.mark.parametrize("command", [[], ["demo"], ["train"], ["predict"], ["evaluate"]])
def test_help_has_examples(run_cli, command: list[str]) -> None:
    code, out, _ = run_cli([*command, "--help"])
    assert code == 0
    assert "examples:" in out
    assert "medseg " in out.split("examples:")[1]


def test_no_command_prints_help_and_exits_2(run_cli) -> None:
    code, out, _ = run_cli([])
    assert code == 2
    assert "COMMAND" in out


def test_unknown_option_is_a_usage_error(run_cli) -> None:
    code, _, err = run_cli(["evaluate", "a", "b", "--no-such-option"])
    assert code == 2
    assert "--no-such-option" in err


# --- train ------------------------------------------------------------------------------


def _train(run_cli, dataset: Path, tmp_path: Path) -> tuple[int, str, str]:
    result = run_cli(["train", dataset, "--out", tmp_path / "run", *TRAIN_OPTIONS])
    assert not (tmp_path / "run").exists(), "a failed train must not leave a run folder"
    return result


def test_train_on_missing_folder(run_cli, tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    assert_user_error(_train(run_cli, missing, tmp_path), missing)


def test_train_without_dataset_json(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    (phantom3d / "dataset.json").unlink()
    assert_user_error(_train(run_cli, phantom3d, tmp_path), phantom3d / "dataset.json")


@pytest.mark.parametrize(
    "content",
    ["{ this is not json", json.dumps({"channel_names": {"0": "CT"}, "labels": {"liver": 1}})],
    ids=["not-json", "missing-keys"],
)
def test_train_with_malformed_dataset_json(
    run_cli, phantom3d: Path, tmp_path: Path, content: str
) -> None:
    (phantom3d / "dataset.json").write_text(content)
    assert_user_error(_train(run_cli, phantom3d, tmp_path), phantom3d / "dataset.json")


def test_train_with_image_lacking_its_label(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    (phantom3d / "labelsTr" / "phantom_001.nii.gz").unlink()
    line = assert_user_error(
        _train(run_cli, phantom3d, tmp_path), phantom3d / "imagesTr" / "phantom_001_0000.nii.gz"
    )
    assert "no label" in line


def _rewrite_label(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    label = read_image(path)
    write_image(Image(change(label.array[0])[None], label.affine), path)


def test_train_with_label_of_another_shape(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    label = phantom3d / "labelsTr" / "phantom_002.nii.gz"
    _rewrite_label(label, lambda a: a[:, :, :-1])
    line = assert_user_error(_train(run_cli, phantom3d, tmp_path), label)
    assert "shape" in line


def test_train_with_undeclared_label_values(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    label = phantom3d / "labelsTr" / "phantom_000.nii.gz"

    def add_nine(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array[0, 0, 0] = 9
        return array

    _rewrite_label(label, add_nine)
    line = assert_user_error(_train(run_cli, phantom3d, tmp_path), label)
    assert "[9]" in line


def test_train_with_empty_images_folder(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    shutil.rmtree(phantom3d / "imagesTr")
    (phantom3d / "imagesTr").mkdir()
    assert_user_error(_train(run_cli, phantom3d, tmp_path), phantom3d / "imagesTr")


def test_train_with_nan_intensities(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    path = phantom3d / "imagesTr" / "phantom_001_0000.nii.gz"
    image = read_image(path)
    array = image.array.astype(np.float32)
    array[0, 3, 3, 3] = np.nan
    write_image(image.with_array(array), path)
    line = assert_user_error(_train(run_cli, phantom3d, tmp_path), path)
    assert "NaN or infinite" in line


def test_train_with_a_4d_image_where_3d_was_expected(
    run_cli, phantom3d: Path, tmp_path: Path
) -> None:
    path = phantom3d / "imagesTr" / "phantom_001_0000.nii.gz"
    image = read_image(path)
    write_image(image.with_array(np.concatenate([image.array] * 2)), path)
    line = assert_user_error(_train(run_cli, phantom3d, tmp_path), path)
    assert "2 channels, expected 1" in line


def test_train_with_a_corrupt_image(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    image = phantom3d / "imagesTr" / "phantom_001_0000.nii.gz"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    assert_user_error(_train(run_cli, phantom3d, tmp_path), image)


def test_train_with_an_impossible_fold(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    result = run_cli(["train", phantom3d, "--out", tmp_path / "run", "--fold", "7", *TRAIN_OPTIONS])
    line = assert_user_error(result)
    assert not (tmp_path / "run").exists()
    assert "fold 7" in line


def test_train_debug_shows_the_traceback(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    (phantom3d / "dataset.json").unlink()
    code, _, err = run_cli(["--debug", "train", phantom3d, "--out", tmp_path / "run"])
    assert code == 2
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("medseg: error: ")


# --- predict ----------------------------------------------------------------------------


def test_predict_with_missing_run_folder(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "absent_run"
    result = run_cli(
        ["predict", run_dir, phantom3d / "imagesTs", "--out", tmp_path / "p", "--device", "cpu"]
    )
    assert_user_error(result, run_dir)


def test_predict_with_empty_run_folder(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "empty_run"
    run_dir.mkdir()
    out = tmp_path / "preds"
    result = run_cli(["predict", run_dir, phantom3d / "imagesTs", "--out", out, "--device", "cpu"])
    line = assert_user_error(result, run_dir)
    assert "plan.json" in line
    assert not out.exists()


def test_predict_with_config_but_no_weights(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run_without_weights"
    run_dir.mkdir()
    auto_config(
        shapes=[(24, 24, 8)],
        spacings=[(0.8, 0.8, 2.5)],
        in_channels=1,
        label_values=[0, 1, 2, 3],
        label_names=["background", "liver", "spleen", "kidney"],
        channel_names=["CT"],
        file_ending=".nii.gz",
    ).save(run_dir)
    (run_dir / "fold_0").mkdir()
    out = tmp_path / "preds"
    result = run_cli(["predict", run_dir, phantom3d / "imagesTs", "--out", out, "--device", "cpu"])
    line = assert_user_error(result, run_dir)
    assert "no trained model" in line
    assert not out.exists()


def test_predict_with_invalid_config_prints_one_line(
    run_cli, phantom3d: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "plan.json").write_text("{}")
    result = run_cli(
        ["predict", run_dir, phantom3d / "imagesTs", "--out", tmp_path / "p", "--device", "cpu"]
    )
    assert_user_error(result, run_dir / "plan.json")


def test_predict_with_unreadable_weights(
    run_cli, untrained_run_dir: Path, phantom3d: Path, tmp_path: Path
) -> None:
    weights = next(untrained_run_dir.rglob("*.safetensors"))
    weights.write_bytes(b"\x00" * 16)
    result = run_cli(
        ["predict", untrained_run_dir, phantom3d / "imagesTs", "--out", tmp_path / "p"]
    )
    assert_user_error(result, weights)


def test_predict_on_empty_input_folder(run_cli, untrained_run_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out = tmp_path / "preds"
    result = run_cli(["predict", untrained_run_dir, inputs, "--out", out, "--device", "cpu"])
    line = assert_user_error(result, inputs)
    assert "no supported image files" in line
    assert not out.exists()


def test_predict_on_missing_input(run_cli, untrained_run_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "scan_0000.nii.gz"
    result = run_cli(
        ["predict", untrained_run_dir, missing, "--out", tmp_path / "p", "--device", "cpu"]
    )
    assert_user_error(result, missing)


def test_predict_on_an_image_with_the_wrong_channel_count(
    run_cli, untrained_run_dir: Path, tmp_path: Path
) -> None:
    scan = tmp_path / "inputs" / "scan.nii.gz"
    write_image(Image(np.zeros((2, 24, 24, 8), np.float32), np.eye(4)), scan)
    result = run_cli(["predict", untrained_run_dir, scan, "--out", tmp_path / "p"])
    line = assert_user_error(result, scan)
    assert "2 channel" in line
    assert not (tmp_path / "p" / "scan.nii.gz").exists()


def test_predict_with_unknown_device(run_cli, untrained_run_dir: Path, tmp_path: Path) -> None:
    write_image(Image(np.zeros((1, 6, 6, 4), np.float32), np.eye(4)), tmp_path / "in" / "a.nii.gz")
    result = run_cli(
        ["predict", untrained_run_dir, tmp_path / "in", "--out", tmp_path / "p", "--device", "tpu"]
    )
    assert "--device tpu" in assert_user_error(result)


# --- evaluate ---------------------------------------------------------------------------


def _label_folders(tmp_path: Path) -> tuple[Path, Path]:
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    label = np.zeros((6, 6, 4), np.uint8)
    label[1:4, 1:4, 1:3] = 1
    for name in ("a.nii.gz", "b.nii.gz"):
        write_image(Image(label[None], np.eye(4)), refs / name)
        write_image(Image(label[None], np.eye(4)), preds / name)
    return preds, refs


def test_evaluate_prints_a_summary_and_writes_files(run_cli, tmp_path: Path) -> None:
    preds, refs = _label_folders(tmp_path)
    out = tmp_path / "scores"
    code, stdout, err = run_cli(["evaluate", preds, refs, "--out", out])
    assert code == 0, err
    assert err.splitlines() == ["scored a", "scored b"]  # plain progress lines off a terminal
    assert "Scores over 2 case(s)" in stdout
    assert "1.0000" in stdout
    assert json.loads((out / "summary.json").read_text())["mean_dice"] == 1.0
    assert (out / "metrics.csv").read_text().count("\n") == 3
    written = [
        "figures",
        "lesions.csv",
        "metrics.csv",
        "report.html",
        "summary.csv",
        "summary.json",
    ]
    assert sorted(p.name for p in out.iterdir()) == written


def test_evaluate_with_missing_prediction(run_cli, tmp_path: Path) -> None:
    preds, refs = _label_folders(tmp_path)
    (preds / "b.nii.gz").unlink()
    out = tmp_path / "scores"
    line = assert_user_error(run_cli(["evaluate", preds, refs, "--out", out]), preds / "b.nii.gz")
    assert "prediction missing" in line
    assert not out.exists()


def test_evaluate_with_mismatched_grid(run_cli, tmp_path: Path) -> None:
    preds, refs = _label_folders(tmp_path)
    write_image(Image(np.zeros((1, 6, 6, 5), np.uint8), np.eye(4)), preds / "a.nii.gz")
    assert_user_error(run_cli(["evaluate", preds, refs]), preds / "a.nii.gz")


def test_evaluate_with_extra_prediction_warns(run_cli, tmp_path: Path) -> None:
    preds, refs = _label_folders(tmp_path)
    shutil.copy(preds / "a.nii.gz", preds / "extra.nii.gz")
    code, _, err = run_cli(["--quiet", "evaluate", preds, refs])
    assert code == 0
    assert err.strip() == (
        f"medseg: warning: {preds / 'extra.nii.gz'}: no reference of that name, not scored"
    )


def test_evaluate_lists_every_problem_then_fails(run_cli, tmp_path: Path) -> None:
    preds, refs = _label_folders(tmp_path)
    (preds / "a.nii.gz").unlink()
    write_image(Image(np.full((1, 6, 6, 4), 0.5, np.float32), np.eye(4)), preds / "b.nii.gz")
    out = tmp_path / "scores"
    code, _, err = run_cli(["evaluate", preds, refs, "--out", out])
    assert code == 2
    assert err.splitlines() == [
        f"medseg: error: {preds / 'a.nii.gz'}: prediction missing (reference {refs / 'a.nii.gz'})",
        f"medseg: error: {preds / 'b.nii.gz'}: not an integer label map",
        "medseg: error: 2 problem(s) in the inputs; nothing was scored or written",
    ]
    assert not out.exists()


def test_evaluate_options(run_cli, tmp_path: Path) -> None:
    preds, refs = _label_folders(tmp_path)
    (preds / "b.nii.gz").unlink()
    out = tmp_path / "scores"
    code, _, err = run_cli(
        ["--quiet", "evaluate", preds, refs, "--out", out, "--missing-as-empty",
         "--tolerance-mm", "2", "--per-label-tolerance", "1=0.5", "--lesion-iou", "0.3",
         "--jobs", "1"]
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["nsd_tolerance_mm"] == 2.0
    assert summary["settings"]["nsd_tolerance_mm_per_label"] == {"1": 0.5}
    assert summary["settings"]["lesion_iou_threshold"] == 0.3
    assert summary["labels"]["1"]["empty_prediction"] == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--per-label-tolerance", "liver"], "expected LABEL=MM"),
        (["--per-label-tolerance", "liver=-1"], "expected a number >= 0"),
        (["--lesion-iou", "1.5"], "expected a number in [0, 1)"),
        (["--jobs", "0"], "expected a positive integer"),
        (["--only-predicted", "--missing-as-empty"], "not allowed with argument"),
        (["--per-label-tolerance", "lung=2"], "unknown label 'lung'"),
    ],
)
def test_evaluate_bad_options(run_cli, tmp_path: Path, option: list[str], message: str) -> None:
    preds, refs = _label_folders(tmp_path)
    code, _, err = run_cli(["evaluate", preds, refs, *option])
    assert code == 2
    assert message in err


# --- fingerprint, plan, preprocess ------------------------------------------------------


def test_fingerprint_plan_preprocess_commands(run_cli, phantom3d: Path, tmp_path: Path) -> None:
    fingerprint = tmp_path / "fp.json"
    code, out, err = run_cli(["--quiet", "fingerprint", phantom3d, "--out", fingerprint])
    assert code == 0, err
    assert json.loads(fingerprint.read_text())["median_shape"] == [24, 24, 8]
    plan = tmp_path / "plan.json"
    code, out, err = run_cli(
        ["--quiet", "plan", phantom3d, "--out", plan, "--set", "batch_size=3",
         "--set", "preprocessing.denoise_sigma_mm=0.5"]
    )  # fmt: skip
    assert code == 0, err
    assert "preprocessing.target_spacing" in out and "median spacing" in out
    saved = json.loads(plan.read_text())
    assert saved["batch_size"] == 3 and saved["preprocessing"]["denoise_sigma_mm"] == 0.5
    assert {d["setting"] for d in saved["decisions"]} >= {"network", "preprocessing.normalization"}
    cache = tmp_path / "cache"
    code, out, err = run_cli(["--quiet", "preprocess", phantom3d, "--plan", plan, "--out", cache])
    assert code == 0, err
    assert len(list(cache.glob("*_image.npy"))) == 3


def test_plan_times_a_batch_set_by_hand_against_the_budget(
    run_cli, phantom3d: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    code, out, err = run_cli(
        ["--quiet", "plan", phantom3d, "--out", plan, "--budget-minutes", "0.2",
         "--set", "batch_size=3"]
    )  # fmt: skip
    assert code == 0, err
    saved = json.loads(plan.read_text())
    network = next(d for d in saved["decisions"] if d["setting"] == "network")
    assert saved["batch_size"] == 3 and "batch 3" in network["value"]
    assert network["reason"].startswith("batch_size set") and "(as set)" in network["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "{data}", "--set", "batchsize=2"], "no setting 'batchsize'"),
        (["plan", "{data}", "--set", "nonsense"], "expected FIELD=VALUE"),
        (["preprocess", "{data}", "--plan", "{tmp}/missing.json", "--out", "{tmp}/c"], "not found"),
        (["fingerprint", "{tmp}/absent"], "absent"),
    ],
)
def test_planning_commands_reject_bad_input(
    run_cli, phantom3d: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(data=phantom3d, tmp=tmp_path) for a in args]
    if "--out" not in filled:
        filled += ["--out", str(tmp_path / "o.json")]
    code, _, err = run_cli(["--quiet", *filled])
    assert code == 2
    assert message in err
