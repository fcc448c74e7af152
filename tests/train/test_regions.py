"""Region-based training as nnU-Net does it (BraTS): nested regions of label values, one
sigmoid output each, label maps written by regions_class_order, scores per region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.datasets import load_dataset_spec
from medseg.errors import DatasetError
from medseg.io import read_image
from medseg.metrics import evaluate_folders
from medseg.nn.losses import RegionDiceBCELoss

REGIONS = {"background": 0, "organ": [1, 2, 3], "spleen or kidney": [2, 3], "kidney": 3}


def _as_regions(dataset: Path) -> None:
    path = dataset / "dataset.json"
    spec = json.loads(path.read_text())
    spec["labels"], spec["regions_class_order"] = REGIONS, [1, 2, 3]
    path.write_text(json.dumps(spec))


def test_region_dataset_json(tmp_path: Path) -> None:
    spec = {"channel_names": {"0": "MR"}, "labels": REGIONS, "regions_class_order": [1, 2, 3],
            "numTraining": 1, "file_ending": ".nii.gz"}  # fmt: skip
    (tmp_path / "dataset.json").write_text(json.dumps(spec))
    loaded = load_dataset_spec(tmp_path / "dataset.json")
    assert [(r.name, r.labels) for r in loaded.regions] == [
        ("organ", [1, 2, 3]), ("spleen or kidney", [2, 3]), ("kidney", [3])
    ]  # fmt: skip
    assert loaded.label_values == [0, 1, 2, 3]
    del spec["regions_class_order"]
    (tmp_path / "dataset.json").write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match="regions_class_order: a region-based dataset needs"):
        load_dataset_spec(tmp_path / "dataset.json")


def test_region_loss_sees_regions_not_classes() -> None:
    membership = torch.tensor([[0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    loss = RegionDiceBCELoss(membership)
    target = torch.tensor([[[0, 1, 2, 2]]])
    assert loss.regions(target).tolist() == [[[[0, 1, 1, 1]], [[0, 0, 1, 1]]]]
    perfect = (loss.regions(target) * 40 - 20).requires_grad_()
    wrong = (-perfect.detach()).requires_grad_()
    assert float(loss(perfect, target).detach()) < 0.01 < 1.5 < float(loss(wrong, target).detach())
    loss(wrong, target).backward()
    assert wrong.grad is not None and torch.isfinite(wrong.grad).all()


def test_training_predicting_and_scoring_regions(phantom3d: Path, tmp_path: Path) -> None:
    from medseg.infer import predict_paths
    from medseg.runs import Plan
    from medseg.train import TrainOptions, train_run

    _as_regions(phantom3d)
    options = TrainOptions(epochs=1, iterations_per_epoch=3, quiet=True, settings={"n_folds": 3})
    result = train_run(phantom3d, tmp_path / "run", options, fold=0)
    plan = Plan.load(tmp_path / "run")
    assert plan.regions == [[1, 2, 3], [2, 3], [3]] and plan.num_classes == 3
    assert result.validation is not None
    assert list(result.validation.summary["labels"]) == ["organ", "spleen or kidney", "kidney"]
    predict_paths(tmp_path / "run", [phantom3d / "imagesTs"], tmp_path / "preds", quiet=True)
    for path in (tmp_path / "preds").glob("*.nii.gz"):
        assert set(np.unique(read_image(path).array)) <= {0, 1, 2, 3}
    # references scored against themselves: every region perfect
    evaluation = evaluate_folders(phantom3d / "labelsTr", phantom3d / "labelsTr")
    assert evaluation.summary["settings"]["regions"]["spleen or kidney"] == [2, 3]
    assert {r["label_name"] for r in evaluation.rows} == {"organ", "spleen or kidney", "kidney"}
    assert all(r["dice"] == 1.0 for r in evaluation.rows if not np.isnan(r["dice"]))


def test_region_masks_in_scores(phantom3d: Path, tmp_path: Path) -> None:
    """A prediction that writes kidney (3) as spleen (2) keeps "organ" and "spleen or kidney"
    perfect and loses "kidney"."""
    from medseg.io import write_image

    _as_regions(phantom3d)
    preds = tmp_path / "preds"
    for path in (phantom3d / "labelsTr").iterdir():
        label = read_image(path)
        wrong = np.where(label.array == 3, 2, label.array).astype(np.uint8)
        write_image(label.with_array(wrong), preds / path.name)
    evaluation = evaluate_folders(preds, phantom3d / "labelsTr")
    dice = {}
    for row in evaluation.rows:
        dice.setdefault(row["label_name"], []).append(row["dice"])
    assert np.nanmin(dice["organ"]) == 1.0 and np.nanmin(dice["spleen or kidney"]) == 1.0
    assert np.nanmax(dice["kidney"]) == 0.0
