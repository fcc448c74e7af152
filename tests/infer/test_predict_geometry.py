"""Predictions land on exactly the voxels of their input."""

import numpy as np
import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.infer import load_trained_model, predict_image, predict_paths
from medseg.io import Image, read_image, write_image
from medseg.train import TrainOptions, train_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    root = tmp_path_factory.mktemp("geom")
    data = write_phantom_dataset(root / "ds", n_train=5, n_test=1, dim=3, shape=(32, 32, 10))
    train_run(data, root / "run", TrainOptions(epochs=1, iterations_per_epoch=2, quiet=True))
    return root / "run"


def _oblique_affine() -> np.ndarray:
    angle = 0.3
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.7, 0.9, 3.1])
    affine[:3, 3] = [-12.5, 40.25, 7.0]
    return affine


@pytest.mark.parametrize("shape", [(32, 32, 10), (37, 29, 7), (12, 50, 3)])
def test_prediction_has_input_shape_and_affine(run_3d, tmp_path, shape):
    rng = np.random.default_rng(0)
    image = Image(rng.normal(size=(1, *shape)).astype(np.float32), _oblique_affine())
    source = tmp_path / "scan_0000.nii.gz"
    write_image(image, source)
    (written,) = predict_paths(run_3d, [source], tmp_path / "out", device="cpu", quiet=True)
    assert written.name == "scan.nii.gz"
    prediction, original = read_image(written), read_image(source)
    assert prediction.spatial_shape == original.spatial_shape == shape
    np.testing.assert_allclose(prediction.affine, original.affine, atol=1e-6)
    assert np.issubdtype(prediction.array.dtype, np.integer)
    assert set(np.unique(prediction.array)) <= {0, 1, 2, 3}


def test_predict_image_in_memory_keeps_geometry(run_3d):
    model = load_trained_model(run_3d, device="cpu")
    image = Image(np.zeros((1, 20, 22, 6), np.float32), _oblique_affine())
    labels = predict_image(model, image)
    assert labels.spatial_shape == image.spatial_shape
    np.testing.assert_array_equal(labels.affine, image.affine)


def test_folder_input_predicts_every_case(run_3d, tmp_path):
    data = run_3d.parent / "ds"
    written = predict_paths(run_3d, [data / "imagesTs"], tmp_path / "out", quiet=True)
    assert [p.name for p in written] == ["phantom_005.nii.gz"]
    reference = read_image(data / "labelsTs" / "phantom_005.nii.gz")
    np.testing.assert_array_equal(read_image(written[0]).affine, reference.affine)


def test_png_prediction_keeps_pixel_grid(tmp_path):
    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=2, shape=(40, 56))
    train_run(data, tmp_path / "run", TrainOptions(epochs=1, iterations_per_epoch=2, quiet=True))
    written = predict_paths(tmp_path / "run", [data / "imagesTs"], tmp_path / "out", quiet=True)
    prediction = read_image(written[0])
    assert written[0].suffix == ".png"
    assert prediction.spatial_shape == (40, 56)
    assert prediction.array.dtype == np.uint8


def test_2d_network_on_3d_volumes_predicts_every_slice(tmp_path):
    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=3, shape=(32, 36, 9))
    train_run(
        data, tmp_path / "run", TrainOptions(dim=2, epochs=1, iterations_per_epoch=2, quiet=True)
    )
    written = predict_paths(tmp_path / "run", [data / "imagesTs"], tmp_path / "out", quiet=True)
    prediction = read_image(written[0])
    reference = read_image(data / "labelsTs" / written[0].name)
    assert prediction.spatial_shape == (32, 36, 9)
    np.testing.assert_allclose(prediction.affine, reference.affine, atol=1e-6)
    assert (tmp_path / "run" / "fold_0" / "validation" / "summary.json").is_file()


def test_jpeg_input_gets_a_png_label_map(tmp_path):
    from PIL import Image as PILImage

    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=2, shape=(40, 40))
    train_run(data, tmp_path / "run", TrainOptions(epochs=1, iterations_per_epoch=1, quiet=True))
    grey = np.asarray(PILImage.open(next((data / "imagesTs").iterdir())))
    PILImage.fromarray(grey).save(tmp_path / "photo.jpg")
    (written,) = predict_paths(tmp_path / "run", [tmp_path / "photo.jpg"], tmp_path / "out")
    assert written.name == "photo.png"
    assert read_image(written).spatial_shape == (40, 40)


def test_dicom_series_folder_is_one_case_on_the_series_grid(coarse_run, tmp_path, dicom_study_dir):
    series = next(p for p in dicom_study_dir.iterdir() if "T1post" in p.name)
    (written,) = predict_paths(coarse_run, [series], tmp_path / "out", device="cpu", quiet=True)
    assert written.name == f"{series.name}.nii.gz"
    source, labels = read_image(series), read_image(written)
    assert labels.spatial_shape == source.spatial_shape
    np.testing.assert_allclose(labels.affine, source.affine, atol=1e-5)


def test_several_series_need_a_choice(coarse_run, tmp_path, dicom_study_dir):
    from medseg.errors import MedsegError

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for folder in [p for p in dicom_study_dir.iterdir() if p.is_dir()][:2]:
        for dcm in folder.glob("*.dcm"):
            (mixed / f"{folder.name[:6]}_{dcm.name}").write_bytes(dcm.read_bytes())
    with pytest.raises(MedsegError, match="series"):
        predict_paths(coarse_run, [mixed], tmp_path / "out", device="cpu", quiet=True)
    chosen = [p for p in dicom_study_dir.iterdir() if p.is_dir()][0]
    description = read_dicom_description(chosen)
    (written,) = predict_paths(
        coarse_run, [mixed], tmp_path / "out", device="cpu", quiet=True, series=description
    )
    assert read_image(written).spatial_shape == read_image(chosen).spatial_shape


def read_dicom_description(folder):
    import pydicom

    first = sorted(folder.glob("*.dcm"))[0]
    return str(pydicom.dcmread(first, stop_before_pixels=True).SeriesDescription)
