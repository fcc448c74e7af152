"""ONNX export and onnxruntime inference: parity with PyTorch on real Hippocampus cases,
the export folder as a self-contained model, and the refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason="pip install 'medseg[onnx]'")

from medseg.export import OnnxNetwork, export_onnx  # noqa: E402
from medseg.io import read_image  # noqa: E402
from medseg.nn.checkpoint import load_weights  # noqa: E402
from medseg.preprocess import preprocess_image  # noqa: E402
from medseg.runs import Plan, network_for, trained_weights  # noqa: E402


def test_logits_agree_on_real_windows(hippocampus_mini_run, tmp_path: Path) -> None:
    run, scans = hippocampus_mini_run
    folder = export_onnx(run, tmp_path / "onnx")
    sidecar = json.loads((folder / "model.json").read_text())
    assert sidecar["folds"][0]["max_abs_logit_difference"] < 1e-4
    assert {p.name for p in folder.iterdir()} >= {"fold_all.onnx", "plan.json", "model.json"}
    plan = Plan.load(run)
    network = network_for(plan)
    load_weights(network, trained_weights(run / "fold_all"), torch.device("cpu"))
    network.eval()
    onnx_network = OnnxNetwork(folder / "fold_all.onnx")
    for path in sorted(scans.iterdir()):
        array, _ = preprocess_image(read_image(path), plan.preprocessing)
        padded = np.zeros((1, *[max(a, p) for a, p in zip(array.shape[1:], plan.patch_size)]),
                          np.float32)  # fmt: skip
        padded[(slice(None), *[slice(0, s) for s in array.shape[1:]])] = array
        window = torch.from_numpy(
            padded[(None, slice(None), *[slice(0, p) for p in plan.patch_size])].copy()
        )
        with torch.no_grad():
            difference = (onnx_network(window) - network(window)).abs().max()
        assert float(difference) < 1e-4


def test_onnxruntime_predicts_the_same_label_maps(hippocampus_mini_run, tmp_path, run_cli) -> None:
    run, scans = hippocampus_mini_run
    code, _, err = run_cli(["export", run, "--out", tmp_path / "onnx"])
    assert code == 0, err
    code, _, err = run_cli(
        ["predict", run, scans, "--out", tmp_path / "torch", "--precision", "float32"]
    )
    assert code == 0, err
    code, _, err = run_cli(["predict", tmp_path / "onnx", scans, "--out", tmp_path / "ort"])
    assert code == 0, err
    for case in sorted(p.name.removesuffix("_0000.nii.gz") for p in scans.iterdir()):
        ours = read_image(tmp_path / f"torch/{case}.nii.gz")
        theirs = read_image(tmp_path / f"ort/{case}.nii.gz")
        assert np.array_equal(ours.array, theirs.array), case
        assert np.array_equal(ours.affine, theirs.affine)
    record = json.loads((tmp_path / "ort/predictions.json").read_text())
    assert record["settings"]["engine"] == "onnxruntime"


def test_predict_engine_onnxruntime_uses_the_runs_export(hippocampus_mini_run, tmp_path, run_cli):
    run, scans = hippocampus_mini_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("preprocessed", "onnx"))
    code, _, err = run_cli(["predict", copy, scans, "--out", tmp_path / "p", "--engine",
                            "onnxruntime"])  # fmt: skip
    assert code == 2 and "no ONNX export here: run 'medseg export RUN_DIR' first" in err
    assert run_cli(["export", copy])[0] == 0
    code, _, err = run_cli(["predict", copy, scans, "--out", tmp_path / "p", "--engine",
                            "onnxruntime"])  # fmt: skip
    assert code == 0, err
    # a model file that is not the one exported is refused
    model = copy / "onnx/fold_all.onnx"
    model.write_bytes(model.read_bytes()[:-1] + b"\0")
    code, _, err = run_cli(["predict", copy / "onnx", scans, "--out", tmp_path / "q"])
    assert code == 2 and "differs from the model model.json describes" in err


def test_dynamic_shapes_take_other_window_sizes(hippocampus_mini_run, tmp_path: Path) -> None:
    run, _ = hippocampus_mini_run
    folder = export_onnx(run, tmp_path / "onnx", dynamic_shapes=True)
    plan = Plan.load(run)
    network = network_for(plan)
    load_weights(network, trained_weights(run / "fold_all"), torch.device("cpu"))
    network.eval()
    stride = [int(np.prod([s[a] for s in plan.strides])) for a in range(3)]
    window = torch.randn(1, 1, *[2 * s for s in stride])
    with torch.no_grad():
        difference = (OnnxNetwork(folder / "fold_all.onnx")(window) - network(window)).abs()
    assert float(difference.max()) < 1e-4


def test_refusals(untrained_run_dir: Path, tmp_path: Path, run_cli) -> None:
    code, _, err = run_cli(["export", untrained_run_dir, "--opset", "9"])
    assert code == 2 and "--opset 9" in err
    for weights in untrained_run_dir.rglob("*.safetensors"):
        weights.unlink()
    code, _, err = run_cli(["export", untrained_run_dir])
    assert code == 2 and "holds no trained model" in err
    assert not (untrained_run_dir / "onnx").exists()
