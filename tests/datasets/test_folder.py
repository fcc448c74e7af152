"""Dataset folders: finding cases, and every inconsistency open_dataset / read_* must catch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import (
    Case,
    group_image_files,
    open_dataset,
    read_case_image,
    read_label,
    read_training_case,
)
from medseg.errors import DatasetError
from medseg.io import Image, read_image, write_image

CASES = ["phantom_000", "phantom_001", "phantom_002"]


def _label(root: Path, case: str = "phantom_001") -> Path:
    return root / "labelsTr" / f"{case}.nii.gz"


def _image(root: Path, case: str = "phantom_001", channel: int = 0) -> Path:
    return root / "imagesTr" / f"{case}_{channel:04d}.nii.gz"


def _edit_json(root: Path, **changes: object) -> None:
    path = root / "dataset.json"
    spec = json.loads(path.read_text())
    spec.update(changes)
    path.write_text(json.dumps(spec))


def _add_second_channel(root: Path) -> None:
    """Turn the phantom into a 2-channel dataset: each _0001 is a copy of the _0000 file."""
    for case in CASES:
        shutil.copy(_image(root, case, 0), _image(root, case, 1))
    _edit_json(root, channel_names={"0": "CT", "1": "CT copy"})


def _rewrite_label(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> None:
    reference = read_image(path)
    write_image(Image(array[None], reference.affine if affine is None else affine), path)


def _assert_dataset_error(root: Path, names: Path, problem: str) -> None:
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    message = str(info.value)
    assert str(names) in message
    assert problem in message


# --- a valid folder ----------------------------------------------------------------------


def test_open_valid_phantom_dataset(phantom3d: Path) -> None:
    dataset = open_dataset(phantom3d)
    assert dataset.root == phantom3d
    assert [c.case_id for c in dataset.training] == CASES
    assert [c.case_id for c in dataset.test] == ["phantom_003"]
    case = dataset.case("phantom_001")
    assert case.image_paths == (_image(phantom3d),)
    assert case.label_path == _label(phantom3d)
    assert dataset.test[0].label_path is None
    assert dataset.spec.num_training == 3
    with pytest.raises(KeyError):
        dataset.case("phantom_999")


def test_hidden_files_are_ignored(phantom3d: Path) -> None:
    (phantom3d / "imagesTr" / ".DS_Store").write_text("finder")
    (phantom3d / "labelsTr" / "._phantom_000.nii.gz").write_bytes(b"resource fork")
    assert len(open_dataset(phantom3d).training) == 3


def test_read_training_case(phantom3d: Path) -> None:
    dataset = open_dataset(phantom3d)
    image, label = read_training_case(dataset.case("phantom_000"), dataset.spec)
    assert image.array.shape == (1, 24, 24, 8)
    assert image.array.dtype == np.float32
    assert np.allclose(image.spacing, (0.8, 0.8, 2.5), atol=1e-6)
    assert label.shape == (24, 24, 8)
    assert label.dtype == np.uint8
    assert set(np.unique(label).tolist()) <= set(dataset.spec.label_values)


def test_two_channel_case_is_stacked_in_channel_order(phantom3d: Path) -> None:
    _add_second_channel(phantom3d)
    second = read_image(_image(phantom3d, "phantom_000", 1))
    write_image(second.with_array(np.zeros_like(second.array)), _image(phantom3d, "phantom_000", 1))
    dataset = open_dataset(phantom3d)
    image, _ = read_training_case(dataset.case("phantom_000"), dataset.spec)
    assert image.channels == 2
    assert np.any(image.array[0] != 0)
    assert np.all(image.array[1] == 0)


def test_read_training_case_of_a_case_without_label(phantom3d: Path) -> None:
    dataset = open_dataset(phantom3d)
    with pytest.raises(DatasetError, match="no label"):
        read_training_case(dataset.test[0], dataset.spec)


# --- folder-level problems ---------------------------------------------------------------


def test_missing_dataset_folder(tmp_path: Path) -> None:
    _assert_dataset_error(tmp_path / "absent", tmp_path / "absent", "not found")


def test_missing_dataset_json(phantom3d: Path) -> None:
    (phantom3d / "dataset.json").unlink()
    _assert_dataset_error(phantom3d, phantom3d / "dataset.json", "not found")


@pytest.mark.parametrize("folder", ["imagesTr", "labelsTr"])
def test_missing_training_folder(phantom3d: Path, folder: str) -> None:
    shutil.rmtree(phantom3d / folder)
    _assert_dataset_error(phantom3d, phantom3d / folder, "not found")


def test_empty_images_folder(phantom3d: Path) -> None:
    for path in (phantom3d / "imagesTr").iterdir():
        path.unlink()
    _assert_dataset_error(phantom3d, phantom3d / "imagesTr", "empty")


def test_image_without_label(phantom3d: Path) -> None:
    _label(phantom3d).unlink()
    _assert_dataset_error(phantom3d, _image(phantom3d), "no label")


def test_label_without_image(phantom3d: Path) -> None:
    stray = phantom3d / "labelsTr" / "stray.nii.gz"
    shutil.copy(_label(phantom3d), stray)
    _assert_dataset_error(phantom3d, stray, "no image")


def test_num_training_mismatch(phantom3d: Path) -> None:
    _edit_json(phantom3d, numTraining=5)
    _assert_dataset_error(phantom3d, phantom3d / "dataset.json", "numTraining is 5")


def test_file_with_another_ending_in_images(phantom3d: Path) -> None:
    stray = phantom3d / "imagesTr" / "notes.txt"
    stray.write_text("not an image")
    _assert_dataset_error(phantom3d, stray, ".nii.gz")


def test_label_with_another_ending(phantom3d: Path) -> None:
    stray = phantom3d / "labelsTr" / "phantom_000.png"
    stray.write_bytes(b"")
    _assert_dataset_error(phantom3d, stray, ".nii.gz")


def test_missing_first_channel_file(phantom3d: Path) -> None:
    _add_second_channel(phantom3d)
    _image(phantom3d, "phantom_001", 0).unlink()
    _assert_dataset_error(phantom3d, phantom3d / "imagesTr" / "phantom_001_0000", "channel 0")


def test_missing_last_channel_file_is_caught_by_open_dataset(phantom3d: Path) -> None:
    _add_second_channel(phantom3d)
    _image(phantom3d, "phantom_001", 1).unlink()
    with pytest.raises(DatasetError, match="phantom_001"):
        open_dataset(phantom3d)


def test_missing_last_channel_file_is_caught_when_the_case_is_read(phantom3d: Path) -> None:
    _add_second_channel(phantom3d)
    _image(phantom3d, "phantom_001", 1).unlink()
    try:
        dataset = open_dataset(phantom3d)
    except DatasetError as exc:  # the right place, once open_dataset checks channel counts
        assert "phantom_001" in str(exc)
        return
    with pytest.raises(DatasetError, match="expected 2") as info:
        read_training_case(dataset.case("phantom_001"), dataset.spec)
    assert "phantom_001" in str(info.value)


def test_channel_files_on_different_grids(phantom3d: Path) -> None:
    _add_second_channel(phantom3d)
    second = _image(phantom3d, "phantom_001", 1)
    image = read_image(second)
    shifted = image.affine.copy()
    shifted[0, 3] += 5.0
    write_image(Image(image.array, shifted), second)
    dataset = open_dataset(phantom3d)
    with pytest.raises(DatasetError, match="grid differs") as info:
        read_training_case(dataset.case("phantom_001"), dataset.spec)
    assert str(second) in str(info.value)


# --- label problems found by read_training_case ------------------------------------------


def _read_bad_label(root: Path) -> str:
    dataset = open_dataset(root)
    with pytest.raises(DatasetError) as info:
        read_training_case(dataset.case("phantom_001"), dataset.spec)
    message = str(info.value)
    assert message.startswith(f"{_label(root)}:")
    return message


def test_label_with_a_different_shape(phantom3d: Path) -> None:
    _rewrite_label(_label(phantom3d), np.zeros((24, 24, 7), np.uint8))
    assert "shape" in _read_bad_label(phantom3d)


def test_label_with_a_different_affine(phantom3d: Path) -> None:
    label = read_image(_label(phantom3d))
    moved = label.affine.copy()
    moved[:3, 3] += (1.0, 0.0, 0.0)
    _rewrite_label(_label(phantom3d), label.array[0], moved)
    assert "affine" in _read_bad_label(phantom3d)


def test_label_with_an_undeclared_value(phantom3d: Path) -> None:
    label = read_image(_label(phantom3d)).array[0].copy()
    label[0, 0, 0] = 7
    _rewrite_label(_label(phantom3d), label)
    assert "[7]" in _read_bad_label(phantom3d)


def test_label_with_non_integer_float_values(phantom3d: Path) -> None:
    label = read_image(_label(phantom3d)).array[0].astype(np.float32)
    label[0, 0, 0] = 0.5
    _rewrite_label(_label(phantom3d), label)
    assert "non-integer" in _read_bad_label(phantom3d)


def test_label_with_nan(phantom3d: Path) -> None:
    label = read_image(_label(phantom3d)).array[0].astype(np.float32)
    label[0, 0, 0] = np.nan
    _rewrite_label(_label(phantom3d), label)
    assert "non-integer" in _read_bad_label(phantom3d)


def test_label_with_two_channels(phantom3d: Path) -> None:
    label = read_image(_label(phantom3d))
    write_image(Image(np.concatenate([label.array, label.array]), label.affine), _label(phantom3d))
    assert "2 channels" in _read_bad_label(phantom3d)


def test_float_label_with_integer_values_is_accepted(phantom3d: Path) -> None:
    original = read_image(_label(phantom3d)).array[0]
    _rewrite_label(_label(phantom3d), original.astype(np.float32))
    dataset = open_dataset(phantom3d)
    _, label = read_training_case(dataset.case("phantom_001"), dataset.spec)
    assert label.dtype == np.uint8
    assert np.array_equal(label, original)


def test_read_label_directly(phantom3d: Path) -> None:
    reference = read_image(_image(phantom3d))
    label = read_label(_label(phantom3d), reference, [0, 1, 2, 3])
    assert label.shape == reference.spatial_shape
    with pytest.raises(DatasetError, match="not in dataset.json"):
        read_label(_label(phantom3d), reference, [0, 1])


# --- grouping files into cases -----------------------------------------------------------


def test_group_image_files() -> None:
    cases = group_image_files(
        [Path("b.png"), Path("a_0001.png"), Path("a_0000.png"), Path("readme.txt")]
    )
    assert cases == [
        Case("a", (Path("a_0000.png"), Path("a_0001.png"))),
        Case("b", (Path("b.png"),)),
    ]


def test_group_image_files_rejects_other_endings_when_one_is_given() -> None:
    with pytest.raises(DatasetError, match="readme.txt"):
        group_image_files([Path("a_0000.png"), Path("readme.txt")], ".png")


def test_group_image_files_missing_channel() -> None:
    with pytest.raises(DatasetError, match="missing channel 1 of 'a'"):
        group_image_files([Path("x/a_0000.png"), Path("x/a_0002.png")])


def test_group_image_files_channel_given_twice() -> None:
    with pytest.raises(DatasetError, match="given twice"):
        group_image_files([Path("x/a_0000.png"), Path("y/a_0000.png")])


def test_read_case_image_checks_the_channel_count(phantom3d: Path) -> None:
    case = Case("phantom_000", (_image(phantom3d, "phantom_000"),))
    assert read_case_image(case).channels == 1
    with pytest.raises(DatasetError, match="expected 2") as info:
        read_case_image(case, num_channels=2)
    assert str(_image(phantom3d, "phantom_000")) in str(info.value)


# --- real datasets -----------------------------------------------------------------------


def test_open_real_hippocampus(hippocampus_dir: Path) -> None:
    dataset = open_dataset(hippocampus_dir)
    assert len(dataset.training) == 200
    assert dataset.spec.label_values == [0, 1, 2]
    assert dataset.spec.num_channels == 1
    assert all(len(c.image_paths) == 1 and c.label_path for c in dataset.training)
    image, label = read_training_case(dataset.training[0], dataset.spec)
    assert image.ndim == 3
    assert label.shape == image.spatial_shape


def test_open_real_isbi(isbi_dir: Path) -> None:
    dataset = open_dataset(isbi_dir)
    assert len(dataset.training) == 30
    assert dataset.spec.file_ending == ".png"
    assert dataset.spec.label_values == [0, 1]
    image, label = read_training_case(dataset.training[0], dataset.spec)
    assert image.array.shape == (1, 512, 512)
    assert set(np.unique(label).tolist()) == {0, 1}


def test_metaimage_dataset_with_detached_data_files(phantom3d: Path, tmp_path: Path) -> None:
    # A dataset stored as .mhd headers: the .raw/.zraw data files beside them are not cases.
    root = tmp_path / "Dataset901_Mhd"
    spec = json.loads((phantom3d / "dataset.json").read_text())
    spec["file_ending"] = ".mhd"
    for folder in ("imagesTr", "labelsTr"):
        for path in sorted((phantom3d / folder).glob("*.nii.gz")):
            name = path.name.replace(".nii.gz", ".mhd")
            write_image(read_image(path), root / folder / name)
    (root / "dataset.json").write_text(json.dumps(spec))
    assert any(not p.name.endswith(".mhd") for p in (root / "imagesTr").iterdir())
    dataset = open_dataset(root)
    assert [c.case_id for c in dataset.training] == ["phantom_000", "phantom_001", "phantom_002"]
    image, label = read_training_case(dataset.training[0], dataset.spec)
    assert image.spatial_shape == label.shape
