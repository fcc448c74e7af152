"""Learned registration: the flow and warp primitives, the network's grid, training on real
Hippocampus pairs for a minute, and `medseg train-registration` / `register --method learned`
end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.datasets import open_dataset, read_case_image, read_label, train_val_split
from medseg.datasets.phantom import write_phantom_dataset
from medseg.io import Image
from medseg.register import Transform, warp_labels
from medseg.register.deformable import integrate_index_velocity, warp_by_index
from medseg.register.learned import (
    CONFIG_FILE,
    MODEL_FILE,
    centre_alignment,
    centred_grid,
    image_centre,
    load_learned_model,
)
from medseg.register.register import register_images
from medseg.register.training import RegistrationTrainingOptions, train_registration
from medseg.register.training_data import GRID_MULTIPLE, plan_grid


def test_a_constant_velocity_flows_into_the_same_translation() -> None:
    velocity = torch.zeros(2, 3, 12, 10, 8)
    velocity[:, 0] = 1.5
    velocity[:, 2] = -0.5
    displacement = integrate_index_velocity(velocity)
    inner = displacement[:, :, 3:-3, 3:-3, 3:-3]  # away from the clamped border
    assert torch.allclose(inner[:, 0], torch.full_like(inner[:, 0], 1.5), atol=1e-5)
    assert torch.allclose(inner[:, 1], torch.zeros_like(inner[:, 1]), atol=1e-5)
    assert torch.allclose(inner[:, 2], torch.full_like(inner[:, 2], -0.5), atol=1e-5)
    assert torch.equal(
        integrate_index_velocity(torch.zeros(1, 3, 5, 5, 5)), torch.zeros(1, 3, 5, 5, 5)
    )


def test_warp_by_an_integer_shift_moves_the_voxels() -> None:
    image = torch.arange(6 * 5 * 4, dtype=torch.float32).reshape(1, 1, 6, 5, 4)
    displacement = torch.zeros(1, 3, 6, 5, 4)
    displacement[:, 1] = 2.0  # sample two voxels further along j
    warped = warp_by_index(image, displacement)
    assert torch.allclose(warped[..., :3, :], image[..., 2:, :], atol=1e-4)
    assert torch.all(warped[..., 3:, :] == 0)  # beyond the image: zero
    nearest = warp_by_index(image, displacement + 0.3, mode="nearest")
    assert torch.equal(nearest[0, 0, :-1, :3, :-1], image[0, 0, :-1, 2:, :-1])


def test_the_grid_is_centred_and_covers_every_image() -> None:
    oblique = np.array(
        [[0.0, 1.0, 0.0, 5.0], [2.0, 0.0, 0.0, -3.0], [0.0, 0.0, 1.0, 7.0], [0, 0, 0, 1]]
    )
    images = [
        Image(np.zeros((1, 30, 20, 10), np.float32), np.diag([1.0, 1.0, 2.0, 1.0])),
        Image(np.zeros((1, 20, 30, 25), np.float32), oblique),
    ]
    spacing, shape = plan_grid(images)
    assert spacing == (1.0, 1.5, 1.5)  # median voxel size along each world axis
    assert all(n % GRID_MULTIPLE == 0 for n in shape)
    # world extents (voxel centres) are 29 x 38 x 24 mm, plus one voxel
    assert np.all(np.array(shape) * spacing >= np.array([30, 39.5, 25.5]))
    grid = centred_grid(image_centre(images[1]), spacing, shape)
    grid_image = Image(np.zeros((1, *shape), np.float32), grid)
    assert np.allclose(image_centre(grid_image), image_centre(images[1]))
    huge = Image(np.zeros((1, 400, 400, 300), np.float32), np.eye(4))
    spacing, shape = plan_grid([huge])
    assert np.prod(shape) <= 96**3 and spacing[0] > 1.0  # coarsened to the voxel budget


def test_centre_alignment_maps_centre_to_centre() -> None:
    fixed = Image(np.zeros((1, 10, 10, 10), np.float32), np.eye(4))
    moved = np.eye(4)
    moved[:3, 3] = [4.0, -2.0, 1.0]
    moving = Image(np.zeros((1, 20, 10, 6), np.float32), moved)
    matrix = centre_alignment(fixed, moving)
    assert np.allclose(Transform(matrix).apply(image_centre(fixed)[None])[0], image_centre(moving))


@pytest.fixture(scope="module")
def hippocampus_model(hippocampus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registration network trained for 3 epochs of 50 steps (about a minute on two idle
    cores) on Hippocampus fold-0 training pairs; steps, not minutes, so that a loaded machine
    trains the same network."""
    out = tmp_path_factory.mktemp("learned") / "model"
    train_registration(hippocampus_dir, out, RegistrationTrainingOptions(epochs=3, quiet=True))
    return out


def test_a_few_epochs_of_training_improve_validation_dice(hippocampus_model: Path) -> None:
    with open(hippocampus_model / "log.csv") as f:
        rows = list(csv.DictReader(f))
    config = json.loads((hippocampus_model / CONFIG_FILE).read_text())
    best = config["training"]["best_validation"]
    assert len(rows) == config["training"]["epochs"] >= 2
    assert best["dice_after"] > best["dice_before"] + 0.05, best
    assert best["folding_percent"] < 1.0
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])


def test_learned_registration_of_unseen_cases_improves_dice(
    hippocampus_dir: Path, hippocampus_model: Path
) -> None:
    """Held-out cases (the fold's 40 validation cases, never trained on, as 20 disjoint
    pairs), on their own grids, through `register_images`: labels overlap better than with
    the image centres aligned (where training starts), by far more than the noise."""
    dataset = open_dataset(hippocampus_dir)
    _, val_ids = train_val_split([c.case_id for c in dataset.training], 0)
    model = load_learned_model(hippocampus_model)

    def case(case_id: str) -> tuple[Image, Image]:
        found = dataset.case(case_id)
        image = read_case_image(found)
        label = read_label(found.label_path, image, dataset.spec.label_values)
        return image, Image(label[None], image.affine)

    gains = []
    for fixed_id, moving_id in zip(val_ids[:20], val_ids[20:40]):
        (fixed, fixed_labels), (moving, moving_labels) = case(fixed_id), case(moving_id)
        result = register_images(
            fixed, moving, "learned", None, moving_labels, fixed_labels,
            affine_first=False, model=model,
        )  # fmt: skip
        assert result.warped.array.shape == fixed.array.shape
        assert np.array_equal(result.warped.affine, fixed.affine)  # on the fixed grid
        assert result.metrics["folding_percent"] < 1.0
        centred = warp_labels(moving_labels, fixed, Transform(centre_alignment(fixed, moving)))
        for value in (1, 2):
            reference = fixed_labels.array[0] == value
            start = centred.array[0] == value
            dice_centred = 2 * (reference & start).sum() / (reference.sum() + start.sum())
            gains.append(result.metrics["labels_after"][str(value)]["dice"] - dice_centred)
    mean, error = np.mean(gains), np.std(gains) / np.sqrt(len(gains))
    assert mean > 0.05 and mean > 3 * error, (mean, error)


def _tiny_dataset(tmp_path: Path) -> Path:
    return write_phantom_dataset(
        tmp_path / "Dataset901_Tiny", n_train=10, n_test=0, shape=(24, 24, 8)
    )


def test_train_registration_and_register_learned_from_the_command_line(
    run_cli, tmp_path: Path
) -> None:
    dataset = _tiny_dataset(tmp_path)
    model = tmp_path / "model"
    code, out, err = run_cli(["train-registration", dataset, "--out", model, "--epochs", "2"])
    assert code == 0, err
    assert "model in" in out
    assert (model / MODEL_FILE).is_file() and (model / CONFIG_FILE).is_file()
    rows = list(csv.DictReader((model / "log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and int(rows[-1]["steps"]) == 100
    config = json.loads((model / CONFIG_FILE).read_text())
    assert config["label_weight"] == 1.0 and config["labels"] == [1, 2, 3]
    fixed = dataset / "imagesTr" / "phantom_000_0000.nii.gz"
    moving = dataset / "imagesTr" / "phantom_001_0000.nii.gz"
    code, out, err = run_cli(
        [
            "register",
            fixed,
            moving,
            "--out",
            tmp_path / "reg",
            "--method",
            "learned",
            "--model",
            model,
            "--refine",
            "3",
            "--moving-labels",
            dataset / "labelsTr" / "phantom_001.nii.gz",
            "--fixed-labels",
            dataset / "labelsTr" / "phantom_000.nii.gz",
        ]
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "reg" / "metrics.json").read_text())
    assert metrics["method"] == "learned" and set(metrics["labels_after"]) == {"1", "2", "3"}
    for name in ("warped.nii.gz", "warped_labels.nii.gz", "displacement.nii.gz", "jacobian.nii.gz"):
        assert (tmp_path / "reg" / name).is_file()
    # a finished model is never overwritten
    code, _, err = run_cli(["train-registration", dataset, "--out", model, "--epochs", "1"])
    assert code == 2 and "already holds a registration model" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "learned"], "--method learned needs --model"),
        (["--method", "learned", "--model", "nowhere"], "not a registration model"),
        (["--method", "affine", "--refine", "5"], "go with --method learned"),
    ],
)
def test_learned_registration_refusals(
    run_cli, tmp_path: Path, extra: list[str], message: str
) -> None:
    dataset = _tiny_dataset(tmp_path)
    images = sorted((dataset / "imagesTr").iterdir())
    code, _, err = run_cli(["register", images[0], images[1], "--out", tmp_path / "r", *extra])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_atlas_labels_need_an_atlas(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli(
        ["train-registration", tmp_path, "--out", tmp_path / "m", "--atlas-labels", tmp_path / "x"]
    )
    assert code == 2 and "--atlas-labels needs --atlas" in err


def test_atlas_mode_registers_every_case_to_the_atlas(run_cli, tmp_path: Path) -> None:
    dataset = _tiny_dataset(tmp_path)
    model = tmp_path / "atlas_model"
    atlas = dataset / "imagesTr" / "phantom_000_0000.nii.gz"
    code, _, err = run_cli(
        [
            "train-registration",
            dataset,
            "--out",
            model,
            "--epochs",
            "1",
            "--atlas",
            atlas,
            "--atlas-labels",
            dataset / "labelsTr" / "phantom_000.nii.gz",
        ]
    )
    assert code == 0, err
    config = json.loads((model / CONFIG_FILE).read_text())
    assert config["atlas"] == str(atlas.resolve()) and config["labels"] == [1, 2, 3]
    assert "dice_after" in config["training"]["best_validation"]
