"""Fold ensembles, mirroring at test time and saved probabilities (untrained networks: the
properties hold for any weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.errors import ConfigError, RunFolderError
from medseg.infer import load_trained_model, predict_paths, predict_probabilities
from medseg.io import Image, read_image
from medseg.train import BEST_WEIGHTS, Plan, network_for, save_weights


@pytest.fixture
def two_fold_run(untrained_run_dir: Path) -> Path:
    torch.manual_seed(123)  # a second, different network
    save_weights(
        network_for(Plan.load(untrained_run_dir)), untrained_run_dir / "fold_1" / BEST_WEIGHTS
    )
    return untrained_run_dir


def _image(seed: int = 0) -> Image:
    rng = np.random.default_rng(seed)
    return Image(rng.normal(size=(1, 24, 24, 8)).astype(np.float32), np.diag([0.8, 0.8, 2.5, 1]))


def test_mirroring_makes_the_prediction_flip_equivariant(untrained_run_dir: Path) -> None:
    model = load_trained_model(untrained_run_dir, device="cpu")
    image = _image()
    flipped = Image(np.ascontiguousarray(image.array[:, ::-1]), image.affine)
    for tta, expect_equal in ((True, True), (False, False)):
        plain = predict_probabilities(model, image, tta=tta)
        mirrored = predict_probabilities(model, flipped, tta=tta)
        equal = np.allclose(mirrored[:, ::-1], plain, atol=1e-5)
        assert equal == expect_equal, f"tta={tta}"


def test_no_mirroring_at_test_time_for_a_model_trained_without_it(
    untrained_run_dir: Path, phantom3d: Path, tmp_path, capsys
) -> None:
    plan = Plan.load(untrained_run_dir)
    off = plan.augmentation.model_copy(update={"enabled": False})
    plan.model_copy(update={"augmentation": off}).save(untrained_run_dir)
    model = load_trained_model(untrained_run_dir, device="cpu")
    image = _image(2)
    np.testing.assert_array_equal(
        predict_probabilities(model, image, tta=True), predict_probabilities(model, image)
    )
    predict_paths(untrained_run_dir, [phantom3d / "imagesTs"], tmp_path / "o", "cpu", quiet=True,
                  tta=True)  # fmt: skip
    assert "trained without mirroring" in capsys.readouterr().err


def test_the_ensemble_averages_the_folds(two_fold_run: Path) -> None:
    image = _image(1)
    both = predict_probabilities(load_trained_model(two_fold_run, "cpu"), image)
    each = [
        predict_probabilities(load_trained_model(two_fold_run, "cpu", folds=[k]), image)
        for k in (0, 1)
    ]
    assert not np.allclose(each[0], each[1], atol=1e-3)
    np.testing.assert_allclose(both, (each[0] + each[1]) / 2, atol=1e-6)
    with pytest.raises(RunFolderError, match="fold_7"):
        load_trained_model(two_fold_run, "cpu", folds=[7])


def test_saved_probabilities_match_the_labels(untrained_run_dir: Path, phantom3d: Path, tmp_path):
    out = tmp_path / "out"
    written = predict_paths(
        untrained_run_dir, [phantom3d / "imagesTs"], out, "cpu", quiet=True,
        save_probabilities="npz",
    )  # fmt: skip
    labels = read_image(written[0])
    with np.load(out / "phantom_003.npz") as saved:
        probabilities = saved["probabilities"]
        values = saved["label_values"]
    assert probabilities.dtype == np.float16
    assert probabilities.shape == (len(values), *labels.spatial_shape)
    np.testing.assert_allclose(probabilities.astype(np.float32).sum(0), 1, atol=5e-3)
    # float16 rounding may only flip near-ties of the (untrained) network's top two classes
    probs = probabilities.astype(np.float32)
    differ = values[probs.argmax(0)] != labels.array[0]
    top_two = np.sort(probs, axis=0)[-2:]
    assert differ.mean() < 0.01
    assert np.all(top_two[1][differ] - top_two[0][differ] <= 2e-3)

    nifti_out = tmp_path / "nifti"
    predict_paths(
        untrained_run_dir, [phantom3d / "imagesTs"], nifti_out, "cpu", quiet=True,
        save_probabilities="nifti", tta=True,
    )  # fmt: skip
    volume = read_image(nifti_out / "phantom_003_probabilities.nii.gz")
    assert volume.channels == len(values)
    np.testing.assert_allclose(volume.affine, labels.affine, atol=1e-6)
    with pytest.raises(ConfigError, match="npz or nifti"):
        predict_paths(untrained_run_dir, [phantom3d / "imagesTs"], tmp_path / "x", "cpu",
                      quiet=True, save_probabilities="hdf5")  # fmt: skip
    shutil.rmtree(out)


def test_compiled_networks_predict_the_same_labels(untrained_run_dir: Path, phantom3d, tmp_path):
    """``--compile`` (torch.compile) changes the speed, not the prediction: the labels of
    the phantom cases equal those of the eager networks up to near-ties of an untrained
    network (outputs agree to about 1e-6)."""
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("no C++ compiler for torch.compile on the CPU")
    plain, fast = tmp_path / "plain", tmp_path / "fast"
    images = phantom3d / "imagesTs"
    # in float32: bfloat16 kernels differ between eager and compiled code by more than
    # float32 ones, and the near-ties of an untrained network follow them
    exact = {"quiet": True, "precision": "float32"}
    predict_paths(untrained_run_dir, [images], plain, "cpu", **exact)
    predict_paths(untrained_run_dir, [images], fast, "cpu", compile_networks=True, **exact)
    for path in plain.glob("*.nii.gz"):
        same = read_image(path).array == read_image(fast / path.name).array
        assert same.mean() > 0.999, path.name
    settings = json.loads((fast / "predictions.json").read_text())["settings"]
    assert settings["compile_networks"] is True


def test_an_onnx_export_is_not_compiled(untrained_run_dir: Path, tmp_path: Path) -> None:
    shutil.copy(untrained_run_dir / "plan.json", tmp_path / "plan.json")
    (tmp_path / "model.json").write_text("{}")  # what makes a folder an ONNX export
    with pytest.raises(ConfigError, match="--compile is for PyTorch"):
        load_trained_model(tmp_path, "cpu", compile_networks=True)
