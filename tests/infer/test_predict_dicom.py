"""`medseg predict --format dicom-seg`: a DICOM Segmentation beside the NIfTI label map, equal
to it voxel for voxel, on real series."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest

from dicom_helpers import LIVER, asymmetric_labels, read_back
from medseg.infer import cohort as cohort_module
from medseg.infer import load_trained_model, predict_dicom_series, predict_paths
from medseg.infer import predict as predict_module
from medseg.io import Image, read_dicom_series, read_image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(coarse_run, tmp_path_factory):
    """The tiny shared run, with codes for its labels in its copy of dataset.json."""
    run = tmp_path_factory.mktemp("seg_run") / "run"
    shutil.copytree(coarse_run, run)
    spec = json.loads((run / "dataset.json").read_text())
    spec["codes"] = {"liver": LIVER}
    (run / "dataset.json").write_text(json.dumps(spec))
    return run


@pytest.fixture(params=["ct", "mr"])
def series_folder(request, dicom_seg_dir, dicom_study_dir):
    if request.param == "ct":
        return dicom_seg_dir / "dcmqi_ct3slice"
    return next(p for p in dicom_study_dir.iterdir() if "T1post" in p.name)


def test_nifti_and_dicom_seg_agree_voxel_for_voxel(run_dir, series_folder, tmp_path, monkeypatch):
    # the model is two steps old: its prediction stands in by a known two-label map, so
    # that both labels are there to compare (predict_labels' own geometry is tested elsewhere)
    real = predict_module.predict_labels

    def known_labels(model, image, *args, **kwargs):
        labels, probabilities = real(model, image, *args, **kwargs)
        return Image(asymmetric_labels(image), labels.affine), probabilities

    monkeypatch.setattr(cohort_module, "predict_labels", known_labels)
    out = tmp_path / "out"
    written = predict_paths(
        run_dir, [series_folder], out, device="cpu", quiet=True, formats="nifti,dicom-seg"
    )
    name = series_folder.name
    assert [p.name for p in written] == [f"{name}.nii.gz", f"{name}_seg.dcm"]
    nifti = read_image(out / f"{name}.nii.gz")
    np.testing.assert_array_equal(read_back(out / f"{name}_seg.dcm", series_folder), nifti.array[0])
    assert set(np.unique(nifti.array)) == {0, 1, 2}
    seg = pydicom.dcmread(out / f"{name}_seg.dcm")
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == ["liver", "spleen", "kidney"]  # every label of the run, empty or not
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Liver"


def test_a_real_prediction_as_dicom_seg_only(run_dir, dicom_seg_dir, tmp_path):
    series = dicom_seg_dir / "dcmqi_ct3slice"
    (written,) = predict_paths(run_dir, [series], tmp_path, device="cpu", quiet=True,
                               formats=["dicom-seg"])  # fmt: skip
    assert written.name == "dcmqi_ct3slice_seg.dcm"
    image = read_dicom_series(series)
    assert read_back(written, series).shape == image.spatial_shape


def test_dicom_seg_needs_a_dicom_series(run_cli, run_dir, coarse_run, tmp_path):
    source = coarse_run.parent / "ds" / "imagesTs"
    code, _, err = run_cli(
        ["predict", run_dir, source, "--out", tmp_path / "o", "--format", "dicom-seg"]
    )
    assert code == 2 and "needs a DICOM series folder" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["predict", run_dir, source, "--out", tmp_path / "o", "--format", "png"])
    assert code == 2 and "--format: expected one or more of nifti, dicom-seg, rtstruct" in err
    assert not (tmp_path / "o").exists()


def test_the_cli_writes_both(run_cli, run_dir, dicom_seg_dir, tmp_path):
    series = dicom_seg_dir / "dcmqi_ct3slice"
    code, out, err = run_cli(
        ["--quiet", "predict", run_dir, series, "--out", tmp_path / "o",
         "--format", "nifti,dicom-seg"]
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "dcmqi_ct3slice.nii.gz", "dcmqi_ct3slice_seg.dcm", "predictions.json"
    ]  # fmt: skip


def test_predict_dicom_series_applies_the_runs_postprocessing(
    run_dir, dicom_seg_dir, tmp_path, monkeypatch
):
    # the DICOM node predicts through predict_dicom_series: it must clean the labels as
    # medseg predict does, with the run folder's postprocessing.json
    chosen = object()
    seen = {}
    real = predict_module.predict_labels

    def recording(model, image, tta=False, postprocessing=None, **kwargs):
        seen["postprocessing"] = postprocessing
        return real(model, image, tta, None, **kwargs)

    monkeypatch.setattr(predict_module, "load_postprocessing", lambda run: chosen)
    monkeypatch.setattr(predict_module, "predict_labels", recording)
    model = load_trained_model(run_dir, device="cpu")
    series = dicom_seg_dir / "dcmqi_ct3slice"
    (written,) = predict_dicom_series(model, series, tmp_path, name="job")
    assert written.name == "job_seg.dcm" and seen["postprocessing"] is chosen
    predict_dicom_series(model, series, tmp_path / "raw", postprocess=False)
    assert seen["postprocessing"] is None
