"""``medseg predict`` over a cohort: predictions.json, resuming, bad cases, worker processes."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from medseg.errors import MedsegError
from medseg.infer import predict_paths
from medseg.io import read_image


@pytest.fixture
def cohort(phantom3d, tmp_path):
    folder = tmp_path / "cohort"
    folder.mkdir()
    for path in sorted((phantom3d / "imagesTr").iterdir()) + sorted(
        (phantom3d / "imagesTs").iterdir()
    ):
        shutil.copy(path, folder / path.name)
    return folder


def _record(out):
    return json.loads((out / "predictions.json").read_text())


def test_predictions_json_says_what_made_each_prediction(cohort, untrained_run_dir, tmp_path):
    out = tmp_path / "out"
    written = predict_paths(untrained_run_dir, [cohort], out, device="cpu", quiet=True)
    assert len(written) == 4
    record = _record(out)
    settings = record["settings"]
    plan = hashlib.sha256((untrained_run_dir / "plan.json").read_bytes()).hexdigest()
    assert settings["plan_sha256"] == plan and settings["run_dir"] == str(
        untrained_run_dir.resolve()
    )
    assert settings["tta"] is False and settings["formats"] == ["nifti"] and record["medseg"]
    entry = record["cases"]["phantom_000"]
    source = cohort / "phantom_000_0000.nii.gz"
    assert entry["status"] == "done" and entry["outputs"] == ["phantom_000.nii.gz"]
    assert entry["inputs"] == [
        {"file": source.name, "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    ]
    assert entry["seconds"] > 0


def test_a_killed_cohort_resumes_and_other_settings_start_again(
    cohort, untrained_run_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    predict_paths(untrained_run_dir, [cohort], out, device="cpu")
    (out / "phantom_001.nii.gz").unlink()  # as if killed before this case was written
    kept = (out / "phantom_000.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    predict_paths(untrained_run_dir, [cohort], out, device="cpu")
    assert "3 case(s) already predicted: skipped" in capsys.readouterr().err
    assert (out / "phantom_001.nii.gz").is_file()
    assert (out / "phantom_000.nii.gz").stat().st_mtime_ns == kept
    predict_paths(untrained_run_dir, [cohort], out, device="cpu", tta=True)
    assert (out / "phantom_000.nii.gz").stat().st_mtime_ns != kept  # new settings: all again
    assert _record(out)["settings"]["tta"] is True


def test_one_bad_case_never_stops_the_others(cohort, untrained_run_dir, tmp_path):
    (cohort / "phantom_001_0000.nii.gz").write_bytes(b"\x1f\x8b garbage, not an image")
    out = tmp_path / "out"
    with pytest.raises(MedsegError, match="1 of 4 case") as error:
        predict_paths(untrained_run_dir, [cohort], out, device="cpu", quiet=True)
    assert "phantom_001_0000.nii.gz" in str(error.value)
    cases = _record(out)["cases"]
    assert cases["phantom_001"]["status"] == "failed" and cases["phantom_001"]["error"]
    assert {c for c, e in cases.items() if e["status"] == "done"} == {
        "phantom_000", "phantom_002", "phantom_003",
    }  # fmt: skip
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [
        "phantom_000.nii.gz", "phantom_002.nii.gz", "phantom_003.nii.gz",
    ]  # fmt: skip


@pytest.mark.slow
def test_worker_processes_write_what_one_process_writes(
    cohort, untrained_run_dir, tmp_path, run_cli
):
    one, two = tmp_path / "one", tmp_path / "two"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker runs: the same arithmetic, bit for bit
    try:
        predict_paths(untrained_run_dir, [cohort], one, device="cpu", quiet=True)
    finally:
        torch.set_num_threads(threads)
    code, _, err = run_cli(["--quiet", "predict", untrained_run_dir, cohort, "--out", two,
                            "--jobs", "2", "--device", "cpu"])  # fmt: skip
    assert code == 0, err
    for path in sorted(one.glob("*.nii.gz")):
        assert np.array_equal(read_image(path).array, read_image(two / path.name).array), path.name
    assert set(_record(two)["cases"]) == set(_record(one)["cases"])


def test_a_record_naming_files_outside_the_folder_is_not_trusted(
    cohort, untrained_run_dir, tmp_path
):
    out = tmp_path / "out"
    predict_paths(untrained_run_dir, [cohort], out, device="cpu", quiet=True)
    record = _record(out)
    (tmp_path / "elsewhere.nii.gz").write_bytes(b"x")
    record["cases"]["phantom_000"]["outputs"] = ["../elsewhere.nii.gz"]
    (out / "predictions.json").write_text(json.dumps(record))
    (out / "phantom_000.nii.gz").unlink()
    written = predict_paths(untrained_run_dir, [cohort], out, device="cpu", quiet=True)
    assert (out / "phantom_000.nii.gz").is_file()  # predicted again, not taken as done
    assert all(path.parent == out for path in written)


def test_an_onnx_export_runs_on_the_cpu_whatever_device_is_asked(
    hippocampus_mini_run, tmp_path
) -> None:
    pytest.importorskip("onnxruntime", reason="pip install 'medseg[onnx]'")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA: --device cuda must not be resolved here")
    from medseg.export import export_onnx

    run_dir, scans = hippocampus_mini_run
    folder = export_onnx(run_dir, tmp_path / "onnx")
    written = predict_paths(folder, [scans], tmp_path / "out", device="cuda", quiet=True)
    assert len(written) == len(list(scans.glob("*.nii.gz")))
