"""``medseg anonymize`` from the command line: what it prints and its exit codes."""

from __future__ import annotations

import shutil

import pydicom


def test_anonymize_prints_what_it_did_and_creates_the_key(run_cli, dicom_seg_dir, tmp_path):
    key = tmp_path / "secrets" / "study.key"
    args = ["anonymize", dicom_seg_dir, tmp_path / "out", "--key-file", key, "--shift-dates"]
    code, out, err = run_cli([*args, "--keep", "ROIName", "--keep-private", "0029,ACME,10"])
    assert code == 0, err
    assert f"new key in {key}" in out and "de-identified 15 files" in out
    assert oct(key.stat().st_mode)[-3:] == "600"
    written = next((tmp_path / "out").rglob("*.dcm"))
    assert pydicom.dcmread(written).LongitudinalTemporalInformationModified == "MODIFIED"
    code, out, _ = run_cli(args)
    assert code == 0 and "new key" not in out and "15 already there" in out


def test_a_bad_file_is_one_error_line_and_exit_2_after_the_rest(run_cli, dicom_seg_dir, tmp_path):
    source = tmp_path / "in"
    shutil.copytree(dicom_seg_dir / "dcmqi_ct3slice", source)
    (source / "04.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")  # cut in its header
    code, out, err = run_cli(["anonymize", source, tmp_path / "out"])
    assert code == 2 and "de-identified 3 files" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "04.dcm" in lines[0]
    assert "1 file(s) could not be de-identified" in lines[1]
    assert "no --key-file" in out


def test_bad_options_are_refused_before_any_work(run_cli, dicom_seg_dir, tmp_path):
    for option in (["--keep-private", "0028,ACME,10"], ["--keep", "PatientName"]):
        code, _, err = run_cli(["anonymize", dicom_seg_dir, tmp_path / "out", *option])
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
