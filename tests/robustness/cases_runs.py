"""Corpus cases for settings and places: run folders (plan.json, weights), dataset folders,
plan files, ``--set`` values and output paths."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
from corpus import (
    SHAPE,
    Base,
    atlas,
    case,
    copy_dataset,
    copy_run,
    deep_json,
    edit_dataset_json,
    evaluate,
    header_only,
    nifti_header,
    predict,
    register_pair,
    set_path,
    train,
    volume,
)

# --- plan.json of a run folder -------------------------------------------------------------

PLAN_EDITS = {
    "plan-negative-label-value": ("label_values", [0, -1, 2]),
    "plan-duplicate-label-values": ("label_values", [0, 1, 1]),
    "plan-patch-size-zero": ("patch_size", [0, 0, 0]),
    "plan-patch-size-million": ("patch_size", [10**6, 10**6, 10**6]),
    "plan-features-100000": ("features", [100_000, 200_000]),
    "plan-negative-features": ("features", [-16, 32]),
    "plan-batch-size-zero": ("batch_size", 0),
    "plan-nan-learning-rate": ("learning_rate", "NaN"),
    "plan-slice-axis-7": ("slice_axis", 7),
    "plan-zero-target-spacing": ("preprocessing.target_spacing", [0.0, 0.8, 2.5]),
    "plan-negative-target-spacing": ("preprocessing.target_spacing", [-0.8, 0.8, 2.5]),
    "plan-strides-of-wrong-length": ("strides", [[1, 1]]),
}


def _plan_case(name: str, field: str, value: object) -> None:
    @case(name)
    def _(d: Path, base: Base) -> tuple[list[str], str]:
        run = copy_run(d, base, lambda plan: set_path(plan, field, value))
        return predict(d, base, base.image, run=run), "plan.json"


for _name, (_field, _value) in PLAN_EDITS.items():
    _plan_case(_name, _field, _value)


@case("plan-binary-garbage")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    (run / "plan.json").write_bytes(np.random.default_rng(0).bytes(512))
    return predict(d, base, base.image, run=run), "plan.json"


@case("plan-nested-200000-deep")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    (run / "plan.json").write_text(deep_json())
    return predict(d, base, base.image, run=run), "plan.json"


@case("plan-missing")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    (run / "plan.json").unlink()
    return predict(d, base, base.image, run=run), "run"


@case("plan-target-spacing-far-from-the-image")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base, lambda plan: set_path(plan, "preprocessing.target_spacing", [0.01] * 3))
    return predict(d, base, base.image, run=run), base.image.name


@case("image-of-40mm-voxels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = volume(d / "coarse.nii.gz", affine=np.diag([40.0, 40.0, 40.0, 1.0]))
    return predict(d, base, path), "coarse.nii.gz"


# --- weights -----------------------------------------------------------------------------------


def _weights(run: Path) -> Path:
    return next((run / "fold_0").glob("*.safetensors"))


@case("weights-are-a-pickle")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    weights = _weights(run)
    weights.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    return predict(d, base, base.image, run=run), weights.name


@case("weights-truncated")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    weights = _weights(run)
    weights.write_bytes(weights.read_bytes()[:1000])
    return predict(d, base, base.image, run=run), weights.name


@case("weights-header-declares-a-terabyte")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    weights = _weights(run)
    weights.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    return predict(d, base, base.image, run=run), weights.name


@case("weights-of-another-network")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base, lambda plan: plan.update(features=[2 * f for f in plan["features"]]))
    return predict(d, base, base.image, run=run), _weights(run).name


# --- dataset folders -----------------------------------------------------------------------


def _dataset_case(name: str, spoil: object) -> None:
    @case(name)
    def _(d: Path, base: Base) -> tuple[list[str], str]:
        dataset = copy_dataset(d, base)
        culprit = spoil(dataset)
        return train(d, dataset), culprit


def _json_edit(edit: object) -> object:
    def spoil(dataset: Path) -> str:
        edit_dataset_json(dataset, edit)
        return "dataset.json"

    return spoil


def _set_labels(labels: object) -> object:
    return _json_edit(lambda spec: spec.update(labels=labels))


def _write_json(text: str | bytes) -> object:
    def spoil(dataset: Path) -> str:
        path = dataset / "dataset.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return "dataset.json"

    return spoil


def _remove(pattern: str) -> object:
    def spoil(dataset: Path) -> str:
        victim = sorted(dataset.glob(pattern))[0]
        victim.unlink()
        return victim.name.removesuffix(".nii.gz")  # the case: named by its image or label

    return spoil


def _replace_label(array: np.ndarray) -> object:
    def spoil(dataset: Path) -> str:
        victim = sorted((dataset / "labelsTr").glob("*.nii.gz"))[0]
        volume(victim, array)
        return victim.name

    return spoil


DATASET_SPOILS = {
    "dataset-json-missing": _remove("dataset.json"),
    "dataset-json-binary-garbage": _write_json(np.random.default_rng(0).bytes(300)),
    "dataset-json-nested-200000-deep": _write_json(deep_json()),
    "dataset-json-labels-a-list": _set_labels(["background", "a"]),
    "dataset-json-negative-label": _set_labels({"background": 0, "a": -3}),
    "dataset-json-duplicate-label-values": _set_labels({"background": 0, "a": 1, "b": 1}),
    "dataset-json-label-value-70000": _set_labels({"background": 0, "a": 70000}),
    "dataset-json-no-background": _set_labels({"a": 1, "b": 2}),
    "dataset-json-file-ending-of-a-path": _json_edit(
        lambda spec: spec.update(file_ending=".nii.gz/../../../x.nii.gz")
    ),
    "dataset-label-file-missing": _remove("labelsTr/phantom_000.nii.gz"),
    "dataset-label-of-floats": _replace_label(np.full(SHAPE, 0.5, np.float32)),
    "dataset-label-value-not-declared": _replace_label(np.full(SHAPE, 7, np.uint8)),
    "dataset-label-of-another-shape": _replace_label(np.zeros((5, 5, 5), np.uint8)),
}

for _name, _spoil in DATASET_SPOILS.items():
    _dataset_case(_name, _spoil)


@case("dataset-image-declares-8e9-voxels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    dataset = copy_dataset(d, base)
    victim = sorted((dataset / "imagesTr").glob("*.nii.gz"))[0]
    header_only(victim, nifti_header((2000, 2000, 2000)))
    return ["fingerprint", str(dataset), "--out", str(d / "out.json")], victim.name


# --- --set values and plan files -------------------------------------------------------------

SET_VALUES = {
    "set-patch-size-zero": "patch_size=[0,0,0]",
    "set-features-100000": "features=[100000,200000]",
    "set-negative-target-spacing": "preprocessing.target_spacing=[-1,1,1]",
    "set-batch-size-text": "batch_size=many",
    "set-unknown-setting": "no_such_setting=1",
}


def _set_case(name: str, setting: str) -> None:
    @case(name)
    def _(d: Path, base: Base) -> tuple[list[str], str]:
        return train(d, base.dataset, "--set", setting), setting.split("=")[0]


for _name, _setting in SET_VALUES.items():
    _set_case(_name, _setting)


def _plan_file_case(name: str, field: str, value: object) -> None:
    @case(name)
    def _(d: Path, base: Base) -> tuple[list[str], str]:
        plan = json.loads((base.run / "plan.json").read_text())
        set_path(plan, field, value)
        path = d / "myplan.json"
        path.write_text(json.dumps(plan))
        argv = ["preprocess", str(base.dataset), "--plan", str(path), "--out", str(d / "out")]
        return argv, "myplan.json"


_plan_file_case("plan-file-negative-target-spacing", "preprocessing.target_spacing", [-1, 1, 1])
_plan_file_case("plan-file-labels-out-of-order", "label_values", [1, 0, 2])


@case("plan-file-target-spacing-0.01mm")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    plan = json.loads((base.run / "plan.json").read_text())
    set_path(plan, "preprocessing.target_spacing", [0.01] * 3)
    path = d / "fine.json"
    path.write_text(json.dumps(plan))
    argv = ["preprocess", str(base.dataset), "--plan", str(path), "--out", str(d / "out")]
    return argv, "_0000.nii.gz"


# --- output places -------------------------------------------------------------------------


def _existing_file(d: Path) -> Path:
    path = d / "taken"
    path.write_text("someone's notes\n")
    return path


@case("predict-out-is-a-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    argv = predict(d, base, base.image)
    argv[-1] = str(_existing_file(d))
    return argv, "taken"


@case("predict-out-under-a-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    argv = predict(d, base, base.image)
    argv[-1] = str(_existing_file(d) / "preds")
    return argv, "taken"


@case("evaluate-out-is-a-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    argv = evaluate(d, base.dataset / "labelsTr", base.dataset / "labelsTr")
    argv[-1] = str(_existing_file(d))
    return argv, "taken"


@case("register-out-is-a-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return register_pair(d, base.image, base.image, out=_existing_file(d)), "taken"


@case("atlas-out-is-a-folder")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "folder").mkdir()
    return atlas(d, base.image, base.image, base.label, out=d / "folder"), "folder"


@case("train-out-is-a-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    argv = train(d, base.dataset)
    argv[argv.index("--out") + 1] = str(_existing_file(d))
    return argv, "taken"


@case("fingerprint-out-under-a-file")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    out = _existing_file(d) / "fingerprint.json"
    return ["fingerprint", str(base.dataset), "--out", str(out)], "taken"


@case("plan-out-is-a-folder")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    (d / "plans").mkdir()
    return ["plan", str(base.dataset), "--out", str(d / "plans")], "plans"


# --- the remaining commands --------------------------------------------------------------


@case("postprocess-run-with-a-garbage-plan")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    run = copy_run(d, base)
    (run / "plan.json").write_bytes(np.random.default_rng(1).bytes(256))
    return ["postprocess", "--auto", str(run), "--dataset", str(base.dataset)], "plan.json"


@case("train-registration-dataset-json-nested-deep")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    dataset = copy_dataset(d, base)
    (dataset / "dataset.json").write_text(deep_json())
    argv = ["train-registration", str(dataset), "--out", str(d / "out"), "--epochs", "1"]
    return argv, "dataset.json"
