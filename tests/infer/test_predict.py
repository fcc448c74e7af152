"""Prediction inputs and run folders: the error paths (no network is trained here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ImageReadError, MedsegError, RunFolderError
from medseg.infer import find_input_cases, load_trained_model
from medseg.train import BEST_WEIGHTS, LATEST_WEIGHTS


def test_find_input_cases_groups_folders_and_files(phantom3d: Path) -> None:
    (phantom3d / "imagesTs" / "notes.txt").write_text("skipped")
    single = phantom3d / "imagesTr" / "phantom_000_0000.nii.gz"
    cases = find_input_cases([phantom3d / "imagesTs", single])
    assert [c.case_id for c in cases] == ["phantom_000", "phantom_003"]
    assert cases[0].image_paths == (single,)


def test_find_input_cases_accepts_strings(phantom3d: Path) -> None:
    assert len(find_input_cases([str(phantom3d / "imagesTr")])) == 3


def test_empty_input_folder(tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / ".hidden.nii.gz").write_bytes(b"")
    (folder / "readme.txt").write_text("no images")
    with pytest.raises(ImageReadError, match="no supported image files") as info:
        find_input_cases([folder])
    assert str(folder) in str(info.value)


def test_missing_input(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="absent.nii.gz: file not found") as info:
        find_input_cases([tmp_path / "absent.nii.gz"])
    assert str(tmp_path / "absent.nii.gz") in str(info.value)


def test_input_file_of_unsupported_type(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm.txt"
    path.write_text("x")
    with pytest.raises(ImageReadError, match="unsupported") as info:
        find_input_cases([path])
    assert str(path) in str(info.value)


def test_no_inputs_at_all() -> None:
    with pytest.raises(ImageReadError):
        find_input_cases([])


def test_input_case_missing_a_channel(tmp_path: Path) -> None:
    for name in ("brain_0000.nii.gz", "brain_0002.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(MedsegError, match="missing channel 1"):
        find_input_cases([tmp_path])


def test_run_folder_not_found(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="not found") as info:
        load_trained_model(tmp_path / "absent", "cpu")
    assert str(tmp_path / "absent") in str(info.value)


def test_empty_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="plan.json") as info:
        load_trained_model(tmp_path, "cpu")
    assert str(tmp_path) in str(info.value)


def test_run_folder_with_config_but_no_weights(untrained_run_dir: Path) -> None:
    for weights in untrained_run_dir.rglob("*.safetensors"):
        weights.unlink()
    (untrained_run_dir / "fold_1").mkdir()
    with pytest.raises(RunFolderError, match="no trained model") as info:
        load_trained_model(untrained_run_dir, "cpu")
    assert str(untrained_run_dir) in str(info.value)


def test_run_folder_with_weights_loads(untrained_run_dir: Path) -> None:
    model = load_trained_model(untrained_run_dir, "cpu")
    assert len(model.networks) == 1
    assert model.config.label_values == [0, 1, 2, 3]


def test_latest_weights_are_used_when_best_are_absent(untrained_run_dir: Path) -> None:
    fold = untrained_run_dir / "fold_0"
    (fold / BEST_WEIGHTS).rename(fold / LATEST_WEIGHTS)
    assert len(load_trained_model(untrained_run_dir, "cpu").networks) == 1


def test_unreadable_weights(untrained_run_dir: Path) -> None:
    weights = untrained_run_dir / "fold_0" / BEST_WEIGHTS
    weights.write_bytes(b"not safetensors at all")
    with pytest.raises(RunFolderError, match="unreadable weights") as info:
        load_trained_model(untrained_run_dir, "cpu")
    assert str(weights) in str(info.value)


def test_weights_that_do_not_fit_the_network(untrained_run_dir: Path) -> None:
    config_path = untrained_run_dir / "plan.json"
    config = json.loads(config_path.read_text())
    config["features"] = [8 * f for f in config["features"]]
    config_path.write_text(json.dumps(config))
    with pytest.raises(RunFolderError, match="do not fit") as info:
        load_trained_model(untrained_run_dir, "cpu")
    assert BEST_WEIGHTS in str(info.value)


def test_config_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text("{ not json")
    with pytest.raises(RunFolderError, match="not valid JSON") as info:
        load_trained_model(tmp_path, "cpu")
    assert str(tmp_path / "plan.json") in str(info.value)


def test_invalid_config_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text("{}")
    with pytest.raises(RunFolderError, match="invalid run configuration") as info:
        load_trained_model(tmp_path, "cpu")
    assert str(tmp_path / "plan.json") in str(info.value)


def test_invalid_config_message_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text("{}")
    with pytest.raises(RunFolderError) as info:
        load_trained_model(tmp_path, "cpu")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target_spacing", [(1.2, 1.2, 2.0), (0.8, 0.8, 2.5)])
@pytest.mark.parametrize("tta", [False, True])
def test_labels_without_probabilities_equal_those_with(
    untrained_run_writer, phantom3d, tmp_path, target_spacing, tta
):
    """The label-only paths (resampled: one channel at a time on the image's grid; not
    resampled: labels of each finished stretch of windows, put back by crop and orientation)
    give exactly the labels of the path that keeps every class's probabilities, also on a
    non-canonical orientation with a border to crop."""
    from medseg.datasets import group_image_files, read_case_image
    from medseg.infer.predict import network_input, predict_labels
    from medseg.io import Image
    from medseg.preprocess import was_resampled

    run = untrained_run_writer(tmp_path / "run", target_spacing=target_spacing)
    model = load_trained_model(run, "cpu")
    case = group_image_files(sorted((phantom3d / "imagesTs").iterdir()))[0]
    image = read_case_image(case)
    array = image.array.copy()
    array[:, :3], array[:, :, -2:] = 0, 0  # a border that cropping to non-zero removes
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])  # the first axis runs right to left
    image = Image(array, image.affine @ flip)
    _, geometry = network_input(model, image)
    assert was_resampled(geometry) == (target_spacing != (0.8, 0.8, 2.5))
    assert geometry.cropped_shape != geometry.original_shape
    kept, probabilities = predict_labels(model, image, tta)
    alone, none = predict_labels(model, image, tta, keep_probabilities=False)
    assert probabilities is not None and none is None
    assert np.array_equal(kept.array, alone.array) and np.array_equal(kept.affine, alone.affine)
    assert len(np.unique(kept.array)) > 1


def test_bfloat16_predicts_real_cases_like_float32(hippocampus_mini_run) -> None:
    """bfloat16 autocast (``auto`` on a CPU with AMX or AVX-512 BF16) gives nearly the labels
    of float32 on real Hippocampus cases; the run trained only 20 steps, so its classes are
    nearer to ties than a trained model's (which differ in ~0.003 % of voxels)."""
    import torch

    from medseg.infer.predict import predict_image
    from medseg.io import read_image

    run, scans = hippocampus_mini_run
    exact = load_trained_model(run, "cpu", precision="float32")
    half = load_trained_model(run, "cpu", precision="bfloat16")
    assert (exact.dtype, half.dtype) == (torch.float32, torch.bfloat16)
    computed = set()
    half.networks[0].register_forward_hook(lambda m, args, out: computed.add(out.dtype))
    for path in sorted(scans.iterdir()):
        image = read_image(path)
        a, b = predict_image(exact, image).array, predict_image(half, image).array
        assert a.shape == b.shape == image.array.shape
        assert (a > 0).sum() > 100  # the network does find the hippocampus
        assert float((a == b).mean()) > 0.99, path.name
    assert computed == {torch.bfloat16}  # the bfloat16 model did compute in it


def test_an_onnx_export_refuses_another_precision(hippocampus_mini_run, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="pip install 'medseg[onnx]'")
    from medseg.errors import ConfigError
    from medseg.export import export_onnx

    folder = export_onnx(hippocampus_mini_run[0], tmp_path / "onnx")
    assert load_trained_model(folder, precision="auto").dtype.is_floating_point
    with pytest.raises(ConfigError, match="--precision bfloat16 is for PyTorch's networks"):
        load_trained_model(folder, precision="bfloat16")
