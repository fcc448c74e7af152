"""nnU-Net v2's ``ignore`` label: unannotated voxels are not trained on, scored or predicted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.datasets import load_dataset_spec
from medseg.errors import DatasetError
from medseg.io import read_image, write_image
from medseg.metrics import evaluate_folders
from medseg.nn.losses import DiceCELoss
from medseg.runs.plan import IGNORE_CLASS

IGNORE = 4  # the phantom's labels are 0-3


def _add_ignore(dataset: Path) -> None:
    """Declare the ignore label and blank out a slab of every training label with it (as a
    sparse annotation would leave it)."""
    spec_path = dataset / "dataset.json"
    spec = json.loads(spec_path.read_text())
    spec["labels"]["ignore"] = IGNORE
    spec_path.write_text(json.dumps(spec))
    for path in (dataset / "labelsTr").iterdir():
        label = read_image(path)
        array = label.array.copy()
        array[0, :, :, : array.shape[-1] // 2] = IGNORE
        write_image(label.with_array(array), path)


def test_dataset_json_ignore_label(tmp_path: Path) -> None:
    spec = load_dataset_spec_from(tmp_path, {"background": 0, "liver": 1, "ignore": 2})
    assert (spec.ignore_label, spec.label_values, spec.stored_values) == (2, [0, 1], [0, 1, 2])
    assert spec.foreground_labels == {1: "liver"}
    with pytest.raises(DatasetError, match="'ignore' label must have the largest value"):
        load_dataset_spec_from(tmp_path, {"background": 0, "ignore": 1, "liver": 2})


def load_dataset_spec_from(folder: Path, labels: dict[str, int]):
    spec = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 1,
            "file_ending": ".nii.gz"}  # fmt: skip
    (folder / "dataset.json").write_text(json.dumps(spec))
    return load_dataset_spec(folder / "dataset.json")


def test_the_loss_does_not_see_ignored_voxels() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 6, 6))
    target[:, :3] = IGNORE_CLASS
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)
    loss = DiceCELoss(ignore_index=IGNORE_CLASS)
    value = loss(logits, target)
    value.backward()
    assert logits.grad is not None and torch.all(logits.grad[:, :, :3] == 0)
    changed = logits.detach().clone()
    changed[:, :, :3] = torch.randn(2, 3, 3, 6) * 10  # whatever is predicted there
    assert float(loss(changed, target)) == pytest.approx(float(value.detach()), rel=1e-6)
    # the annotated part alone gives the same loss
    alone = DiceCELoss()(logits.detach()[:, :, 3:], target[:, 3:])
    assert float(value.detach()) == pytest.approx(float(alone), rel=1e-5)


def test_evaluation_leaves_ignored_voxels_out(phantom3d: Path, tmp_path: Path) -> None:
    _add_ignore(phantom3d)
    preds = tmp_path / "preds"
    for path in (phantom3d / "labelsTr").iterdir():
        label = read_image(path)
        truth = label.array[0]
        prediction = np.where(truth == IGNORE, 1, truth)  # wrong only where nobody annotated
        write_image(label.with_array(prediction[None].astype(np.uint8)), preds / path.name)
    evaluation = evaluate_folders(preds, phantom3d / "labelsTr")
    assert evaluation.summary["settings"]["ignore_label"] == IGNORE
    assert {r["label"] for r in evaluation.rows} == {1, 2, 3}
    assert all(r["dice"] == 1.0 for r in evaluation.rows if not np.isnan(r["dice"]))


def test_training_with_an_ignore_label_never_predicts_it(phantom3d: Path, tmp_path: Path) -> None:
    from medseg.infer import predict_paths
    from medseg.runs import Plan
    from medseg.train import TrainOptions, train_run

    _add_ignore(phantom3d)
    options = TrainOptions(epochs=1, iterations_per_epoch=3, quiet=True, settings={"n_folds": 3})
    result = train_run(phantom3d, tmp_path / "run", options, fold=0)
    plan = Plan.load(tmp_path / "run")
    assert plan.ignore_label == IGNORE and plan.label_values == [0, 1, 2, 3]
    assert result.validation is not None  # scored against label files holding the ignore label
    predict_paths(tmp_path / "run", [phantom3d / "imagesTs"], tmp_path / "preds", quiet=True)
    for path in (tmp_path / "preds").glob("*.nii.gz"):
        assert IGNORE not in np.unique(read_image(path).array)
