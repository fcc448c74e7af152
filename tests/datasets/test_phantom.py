"""The synthetic phantom: deterministic from the seed, three organs, the promised geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import open_dataset, read_training_case
from medseg.datasets.phantom import LABELS, make_phantom_case, write_phantom_dataset
from medseg.io import read_image

SHAPE_3D = (24, 24, 8)
SPACING_3D = (0.8, 0.8, 2.5)


def _case(seed: int, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return make_phantom_case(np.random.default_rng([seed, index]), SHAPE_3D, SPACING_3D)


def _arrays(root: Path) -> dict[str, bytes]:
    """Every image file's array bytes, keyed by its path inside the dataset."""
    return {
        str(p.relative_to(root)): read_image(p).array.tobytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "dataset.json"
    }


def test_same_seed_gives_identical_arrays() -> None:
    image_a, label_a = _case(seed=3)
    image_b, label_b = _case(seed=3)
    assert image_a.tobytes() == image_b.tobytes()
    assert label_a.tobytes() == label_b.tobytes()


def test_different_seed_gives_different_arrays() -> None:
    image_a, label_a = _case(seed=3)
    image_b, label_b = _case(seed=4)
    assert image_a.tobytes() != image_b.tobytes()
    assert label_a.tobytes() != label_b.tobytes()


def test_case_arrays_have_the_promised_types() -> None:
    image, label = _case(seed=0)
    assert image.shape == label.shape == SHAPE_3D
    assert image.dtype == np.float32
    assert label.dtype == np.uint8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_case_holds_all_three_organs(seed: int) -> None:
    image, label = _case(seed)
    assert sorted(np.unique(label).tolist()) == [0, 1, 2, 3]
    # Organs are brighter than air: labelled voxels are inside the body.
    assert image[label > 0].mean() > image[label == 0].mean()


def test_written_dataset_is_deterministic(tmp_path: Path) -> None:
    a = write_phantom_dataset(tmp_path / "a", n_train=2, n_test=1, seed=5, shape=SHAPE_3D)
    b = write_phantom_dataset(tmp_path / "b", n_train=2, n_test=1, seed=5, shape=SHAPE_3D)
    c = write_phantom_dataset(tmp_path / "c", n_train=2, n_test=1, seed=6, shape=SHAPE_3D)
    arrays_a, arrays_b, arrays_c = _arrays(a), _arrays(b), _arrays(c)
    assert len(arrays_a) == 6
    assert arrays_a == arrays_b
    assert arrays_a.keys() == arrays_c.keys()
    assert all(arrays_a[k] != arrays_c[k] for k in arrays_a)


def test_cases_of_one_dataset_differ(phantom3d: Path) -> None:
    labels = sorted((phantom3d / "labelsTr").iterdir())
    assert read_image(labels[0]).array.tobytes() != read_image(labels[1]).array.tobytes()


def test_3d_dataset_layout_and_geometry(phantom3d: Path) -> None:
    images = sorted(p.name for p in (phantom3d / "imagesTr").iterdir())
    assert images == [f"phantom_{i:03d}_0000.nii.gz" for i in range(3)]
    assert sorted(p.name for p in (phantom3d / "labelsTr").iterdir()) == [
        f"phantom_{i:03d}.nii.gz" for i in range(3)
    ]
    assert [p.name for p in (phantom3d / "imagesTs").iterdir()] == ["phantom_003_0000.nii.gz"]
    assert [p.name for p in (phantom3d / "labelsTs").iterdir()] == ["phantom_003.nii.gz"]
    for path in sorted(phantom3d.rglob("*.nii.gz")):
        image = read_image(path)
        assert image.spatial_shape == SHAPE_3D
        assert np.allclose(image.spacing, SPACING_3D, atol=1e-6)
        assert np.allclose(image.affine, np.diag([*SPACING_3D, 1.0]), atol=1e-6)
    ct = read_image(phantom3d / "imagesTr" / "phantom_000_0000.nii.gz")
    assert ct.array.dtype == np.int16
    assert ct.array.min() < -500, "air around the body is near -1000 HU"
    for path in sorted((phantom3d / "labelsTr").iterdir()):
        label = read_image(path)
        assert np.issubdtype(label.array.dtype, np.integer)
        assert sorted(np.unique(label.array).tolist()) == [0, 1, 2, 3]


def test_dataset_json(phantom3d: Path) -> None:
    spec = json.loads((phantom3d / "dataset.json").read_text())
    assert spec["labels"] == LABELS == {"background": 0, "liver": 1, "spleen": 2, "kidney": 3}
    assert spec["numTraining"] == 3
    assert spec["file_ending"] == ".nii.gz"
    assert spec["channel_names"] == {"0": "CT"}


def test_phantom_is_a_valid_dataset(phantom3d: Path) -> None:
    dataset = open_dataset(phantom3d)
    assert len(dataset.training) == 3
    assert len(dataset.test) == 1
    for case in dataset.training:
        image, label = read_training_case(case, dataset.spec)
        assert image.spatial_shape == label.shape


def test_2d_dataset_writes_png(phantom2d: Path) -> None:
    assert sorted(p.name for p in (phantom2d / "imagesTr").iterdir()) == [
        f"phantom_{i:03d}_0000.png" for i in range(3)
    ]
    assert not list(phantom2d.rglob("*.nii.gz"))
    spec = json.loads((phantom2d / "dataset.json").read_text())
    assert spec["file_ending"] == ".png"
    image = read_image(phantom2d / "imagesTr" / "phantom_000_0000.png")
    assert image.array.shape == (1, 32, 32)
    assert image.array.dtype == np.uint8
    assert image.array.max() > image.array.min()
    label = read_image(phantom2d / "labelsTr" / "phantom_000.png")
    assert sorted(np.unique(label.array).tolist()) == [0, 1, 2, 3]
    dataset = open_dataset(phantom2d)
    assert len(dataset.training) == 3
    read_training_case(dataset.training[0], dataset.spec)


def test_existing_folder_is_replaced(tmp_path: Path) -> None:
    root = tmp_path / "phantom"
    root.mkdir()
    (root / "stale.txt").write_text("old")
    write_phantom_dataset(root, n_train=1, n_test=0, shape=SHAPE_3D)
    assert not (root / "stale.txt").exists()
    assert len(list((root / "imagesTr").iterdir())) == 1


def test_invalid_dim_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dim"):
        write_phantom_dataset(tmp_path / "x", dim=4)
    assert not (tmp_path / "x").exists()
