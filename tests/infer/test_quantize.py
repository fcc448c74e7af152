"""``medseg export --quantize int8|fp16`` on a real Hippocampus run: the compressed models,
the Dice report, prediction from the export, and the refusal that writes nothing."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="pip install 'medseg[onnx]'")

from medseg.errors import ConfigError  # noqa: E402
from medseg.infer import quantize  # noqa: E402
from medseg.infer.quantize import export_quantized  # noqa: E402
from medseg.io import read_image  # noqa: E402
from medseg.metrics.overlap import dice_per_label  # noqa: E402

CASES = ["hippocampus_001", "hippocampus_004", "hippocampus_007", "hippocampus_008",
         "hippocampus_011", "hippocampus_014", "hippocampus_015", "hippocampus_017",
         "hippocampus_019", "hippocampus_020"]  # fmt: skip


@pytest.fixture(scope="module")
def fold_run(hippocampus_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Fold 0 of a run trained for 60 steps on ten real Hippocampus cases (two held out)."""
    from medseg.train import TrainOptions, train_run

    root = tmp_path_factory.mktemp("int8")
    data = root / "Dataset004_Hippocampus"
    for folder in ("imagesTr", "labelsTr"):
        (data / folder).mkdir(parents=True)
    for case in CASES:
        shutil.copy(hippocampus_dir / f"imagesTr/{case}_0000.nii.gz", data / "imagesTr")
        shutil.copy(hippocampus_dir / f"labelsTr/{case}.nii.gz", data / "labelsTr")
    spec = json.loads((hippocampus_dir / "dataset.json").read_text())
    (data / "dataset.json").write_text(json.dumps({**spec, "numTraining": len(CASES)}))
    options = TrainOptions(epochs=3, iterations_per_epoch=20, quiet=True)
    train_run(data, root / "run", options, fold=0)
    return root / "run", data


def test_int8_export_reports_dice_on_the_validation_cases_and_predicts(
    fold_run, tmp_path, run_cli
) -> None:
    run, data = fold_run
    code, out, err = run_cli(["export", run, "--quantize", "int8", "--out", tmp_path / "q8",
                              "--calibration-cases", "4", "--max-dice-drop", "1"])  # fmt: skip
    assert code == 0, err
    assert "fold_0: Dice Anterior" in out and "validation cases" in out
    sidecar = json.loads((tmp_path / "q8/model.json").read_text())
    result = sidecar["quantization"]["folds"]["fold_0"]
    validation = sorted(p.name.removesuffix(".nii.gz") for p in (run / "fold_0/validation")
                        .glob("*.nii.gz"))  # fmt: skip
    assert result["checked_on"] == "validation cases" and result["cases"] == len(validation)
    import onnx

    operators = collections.Counter(n.op_type for n in onnx.load(tmp_path / "q8/fold_0.onnx")
                                    .graph.node)  # fmt: skip
    assert operators["QuantizeLinear"] > 0 and operators["DequantizeLinear"] > 0
    # the export predicts on its own; its Dice on the validation cases is the one reported
    images = tmp_path / "images"
    images.mkdir()
    for case in validation:
        shutil.copy(data / f"imagesTr/{case}_0000.nii.gz", images)
    code, _, err = run_cli(["predict", tmp_path / "q8", images, "--out", tmp_path / "p"])
    assert code == 0, err
    scores = collections.defaultdict(list)
    for case in validation:
        reference = read_image(data / f"labelsTr/{case}.nii.gz").array[0]
        predicted = read_image(tmp_path / f"p/{case}.nii.gz").array[0]
        for label, value in dice_per_label(reference, predicted, [1, 2]).items():
            scores[label].append(value)
    reported = result["int8"]["dice"]
    assert reported["Anterior"] == pytest.approx(np.mean(scores[1]), abs=1e-4)
    assert reported["Posterior"] == pytest.approx(np.mean(scores[2]), abs=1e-4)
    assert result["float32"]["dice"]["Anterior"] > 0.3  # a network that learned something


def test_a_dice_drop_beyond_the_tolerance_writes_nothing(fold_run, tmp_path, monkeypatch):
    """Ranges calibrated on blank windows clip every real activation: Dice collapses and
    the export is refused, leaving no folder behind."""
    run, _ = fold_run
    blank = lambda model, cases, dataset: iter([np.zeros((1, 1, *model.config.patch_size),  # noqa: E731
                                                         np.float32)])  # fmt: skip
    monkeypatch.setattr(quantize, "_windows", blank)
    with pytest.raises(ConfigError, match=r"int8 loses .* Dice on .*nothing written"):
        export_quantized(run, "int8", tmp_path / "q8", max_dice_drop=0.05)
    assert not (tmp_path / "q8").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".q8")]


def test_a_half_precision_export_keeps_the_dice(fold_run, tmp_path, run_cli) -> None:
    run, _ = fold_run
    code, out, err = run_cli(["export", run, "--quantize", "fp16", "--out", tmp_path / "h"])
    assert code == 0, err
    assert "wrote the fp16 ONNX export" in out
    import onnx

    model = onnx.load(tmp_path / "h/fold_0.onnx")
    half = onnx.TensorProto.FLOAT16
    assert any(t.data_type == half for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    result = json.loads((tmp_path / "h/model.json").read_text())["quantization"]
    fold = result["folds"]["fold_0"]
    for label, value in fold["float32"]["dice"].items():
        assert abs(fold["fp16"]["dice"][label] - value) < 0.005, label
    with pytest.raises(ConfigError, match="--quantize int4"):
        export_quantized(run, "int4", tmp_path / "x")
