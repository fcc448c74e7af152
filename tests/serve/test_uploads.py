"""Upload checks: formats by ending, and every kind of hostile zip refused before writing."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from medseg.serve.uploads import Limits, UploadError, input_format, unpack_dicom_zip


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def test_formats_come_from_the_ending_only():
    assert input_format("a.nii") == ("nifti", "input.nii")
    assert input_format("../../etc/passwd.png") == ("png", "input.png")
    for bad in ("scan.dcm", "notes.txt", None, "x.nii.gz.exe"):
        with pytest.raises(UploadError) as error:
            input_format(bad)
        assert error.value.status == 415


def test_a_series_zip_is_unpacked_under_names_medseg_makes(tmp_path):
    archive = _zip(tmp_path / "s.zip", [("deep/dir/IM1", b"a" * 10), ("IM2.dcm", b"b" * 20)])
    assert unpack_dicom_zip(archive, tmp_path / "out", Limits()) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.dcm", "00001.dcm"]
    assert (tmp_path / "out/00001.dcm").read_bytes() == b"b" * 20


def _link():
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "members, limits, message, status",
    [
        ([("../evil", b"x")], Limits(), "outside itself", 400),
        ([("/etc/evil", b"x")], Limits(), "outside itself", 400),
        ([("C:\\evil", b"x")], Limits(), "outside itself", 400),
        ([(_link(), b"/etc/passwd")], Limits(), "a link", 400),
        ([(f"f{k}", b"x") for k in range(6)], Limits(zip_entries=5), "holds 6 files", 413),
        ([("big", b"\0" * 10**6)], Limits(), "compressed more than", 413),
        ([("a", b"x" * 600), ("b", b"y" * 600)], Limits(unpacked_bytes=1000), "unpacks to", 413),
        ([], Limits(), "no files", 400),
    ],
)
def test_hostile_zips_are_refused_before_anything_is_written(
    tmp_path, members, limits, message, status
):
    archive = _zip(tmp_path / "bad.zip", members)
    with pytest.raises(UploadError, match=message) as error:
        unpack_dicom_zip(archive, tmp_path / "out", limits)
    assert error.value.status == status
    assert not any((tmp_path / "out").glob("*"))


def test_a_member_larger_than_its_header_says_is_stopped(tmp_path):
    archive = _zip(tmp_path / "lie.zip", [("a", b"x" * 5000)])
    data = bytearray(archive.read_bytes())
    # shrink the declared size in the central directory (offset 24 of its entry)
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(UploadError, match="more than it declares|not a readable zip"):
        unpack_dicom_zip(archive, tmp_path / "out", Limits(zip_ratio=1e9))


def test_garbage_is_not_a_zip(tmp_path):
    (tmp_path / "x.zip").write_bytes(io.BytesIO(b"not a zip at all").getvalue())
    with pytest.raises(UploadError, match="not a readable zip"):
        unpack_dicom_zip(tmp_path / "x.zip", tmp_path / "out", Limits())
