"""`medseg explain` on a classifier run and on a segmenter run: files on the input's grid."""

from __future__ import annotations

import numpy as np
import pytest

from classification_helpers import make_dataset
from medseg.errors import ConfigError
from medseg.io import read_image
from medseg.train.classifier import train_classifier


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    dataset = make_dataset(root / "Dataset9_Spots")
    overrides = {"steps_per_epoch": 20, "batch_size": 16}
    train_classifier(dataset, root / "run", epochs=2, overrides=overrides, quiet=True)
    return root / "run", dataset


def test_a_classifier_is_explained_per_class_on_the_images_grid(classifier_run, tmp_path, run_cli):
    run, dataset = classifier_run
    image_path = dataset / "imagesTs" / "ts000_0000.png"
    code, out, err = run_cli(["explain", run, image_path, "--out", tmp_path / "cams"])
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "cams").iterdir())
    assert names == [
        "ts000_features_encoder0.png", "ts000_features_encoder2.png",
        "ts000_gradcam_plain.nii.gz", "ts000_gradcam_plain.png",
        "ts000_gradcam_spot.nii.gz", "ts000_gradcam_spot.png",
    ]  # fmt: skip
    cam, image = read_image(tmp_path / "cams/ts000_gradcam_spot.nii.gz"), read_image(image_path)
    assert cam.array.shape == image.array.shape
    np.testing.assert_allclose(cam.affine, image.affine)
    assert cam.array.min() >= 0 and cam.array.max() == pytest.approx(1.0)


def test_a_segmenter_is_explained_per_label_on_the_input_grid(coarse_run, tmp_path):
    from medseg.explain.explain import explain_cases

    image_path = next((coarse_run.parent / "ds" / "imagesTs").iterdir())
    written = explain_cases(coarse_run, [image_path], tmp_path / "cams", quiet=True)
    maps = [p for p in written if p.name.endswith(".nii.gz")]
    assert len(maps) >= 1 and all("_gradcam_" in p.name for p in maps)
    cam, image = read_image(maps[0]), read_image(image_path)
    assert cam.spatial_shape == image.spatial_shape
    np.testing.assert_allclose(cam.affine, image.affine)


def test_a_wrong_layer_is_one_line(classifier_run, tmp_path, run_cli):
    run, dataset = classifier_run
    args = ["explain", run, dataset / "imagesTs", "--out", tmp_path / "c", "--layer", "head.9"]
    code, _, err = run_cli(args)
    assert code == 2 and "--layer head.9: no such layer" in err and len(err.splitlines()) == 1
    with pytest.raises(ConfigError):
        from medseg.explain.explain import explain_cases

        explain_cases(run, [dataset / "imagesTs"], tmp_path / "d", layer="nope")
