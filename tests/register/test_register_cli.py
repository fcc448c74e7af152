"""`medseg register` end to end: every result file, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from medseg.io import Image, read_image, write_image
from medseg.register import read_affine_text, read_displacement


def _pair(tmp_path: Path) -> dict[str, Path]:
    """A smooth 3D image, the same shifted by 3 mm along x, and their ball labels."""
    rng = np.random.default_rng(0)
    shape = (40, 36, 32)
    data = ndimage.gaussian_filter(rng.standard_normal(shape), 3).astype(np.float32)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    ball = np.linalg.norm(index - np.array([20, 18, 16])[:, None, None, None], axis=0) < 8
    data += 2.0 * ball
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    moved_affine = affine.copy()
    moved_affine[0, 3] = 3.0  # the same voxels, 3 mm further along x
    paths = {}
    for name, array, aff in (
        ("fixed", data, affine),
        ("moving", data, moved_affine),
        ("fixed_labels", ball.astype(np.uint8), affine),
        ("moving_labels", ball.astype(np.uint8), moved_affine),
    ):
        paths[name] = tmp_path / f"{name}.nii.gz"
        write_image(Image(array[None], aff), paths[name])
    return paths


def test_register_writes_every_file(run_cli, tmp_path: Path) -> None:
    paths = _pair(tmp_path)
    out = tmp_path / "reg"
    code, stdout, err = run_cli(
        ["--quiet", "register", paths["fixed"], paths["moving"], "--out", out,
         "--moving-labels", paths["moving_labels"], "--fixed-labels", paths["fixed_labels"]]
    )  # fmt: skip
    assert code == 0, err
    expected = {
        "warped.nii.gz", "warped_labels.nii.gz", "displacement.nii.gz", "affine.txt",
        "affine.tfm", "affine.mat", "jacobian.nii.gz", "metrics.json", "overlay.png",
    }  # fmt: skip
    assert {p.name for p in out.iterdir()} == expected
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels_after"]["1"]["dice"] > metrics["labels_before"]["1"]["dice"]
    assert metrics["labels_after"]["1"]["dice"] > 0.9
    assert metrics["folding_percent"] == 0.0 and "seconds" in metrics
    # the affine found moves fixed points +3 mm along x into the moving world
    assert read_affine_text(out / "affine.txt")[0, 3] == pytest.approx(3.0, abs=0.5)
    field, field_affine = read_displacement(out / "displacement.nii.gz")
    np.testing.assert_allclose(field_affine, read_image(paths["fixed"]).affine)
    assert np.median(field[0]) == pytest.approx(3.0, abs=0.5)
    assert "Dice" in stdout


@pytest.mark.parametrize("problem", ["2d", "empty", "nan", "label_grid"], ids=lambda p: f"bad-{p}")
def test_register_refuses_bad_input(run_cli, tmp_path: Path, problem: str) -> None:
    paths = _pair(tmp_path)
    args = ["register", paths["fixed"], paths["moving"], "--out", tmp_path / "reg"]
    named = paths["moving"]
    if problem == "2d":
        named = tmp_path / "slice.png"
        write_image(Image(np.zeros((1, 8, 8), np.uint8) + 7, np.eye(4)), named)
        args[2] = named
    elif problem == "empty":
        write_image(Image(np.zeros((1, 8, 8, 8), np.float32), np.eye(4)), named)
    elif problem == "nan":
        image = read_image(named)
        array = image.array.copy()
        array[0, 1, 1, 1] = np.nan
        nib.save(nib.Nifti1Image(array[0], image.affine), named)
    else:
        named = paths["fixed_labels"]
        write_image(Image(np.zeros((1, 10, 10, 10), np.uint8), np.eye(4)), named)
        args += ["--moving-labels", paths["moving_labels"], "--fixed-labels", named]
    code, _, err = run_cli(args)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(named) in lines[0]
    assert not (tmp_path / "reg").exists()


def test_atlas_segment_command(run_cli, tmp_path: Path) -> None:
    paths = _pair(tmp_path)
    out = tmp_path / "seg.nii.gz"
    atlas = f"{paths['moving']}:{paths['moving_labels']}"
    code, stdout, err = run_cli(
        ["--quiet", "atlas-segment", paths["fixed"], "--atlas", atlas, "--atlas", atlas,
         "--atlas", atlas, "--method", "affine", "--out", out]
    )  # fmt: skip
    assert code == 0, err
    segmentation = read_image(out).array[0]
    truth = read_image(paths["fixed_labels"]).array[0]
    dice = (
        2
        * np.sum((segmentation == 1) & (truth == 1))
        / (np.sum(segmentation == 1) + np.sum(truth == 1))
    )
    assert dice > 0.9 and "fused 3 atlas" in stdout


def test_atlas_segment_rejects_a_malformed_pair(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli(["atlas-segment", "x.nii.gz", "--atlas", "only_image", "--out", "y"])
    assert code == 2 and "IMAGE:LABELS" in err
