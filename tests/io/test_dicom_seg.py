"""DICOM-SEG out: label maps on real DICOM series written with highdicom and read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_helpers import LIVER, asymmetric_labels, dciodvfy_errors, read_back
from medseg.errors import ConfigError, ImageReadError, ImageWriteError
from medseg.io import Image, read_dicom_series, read_image
from medseg.io.dicom import series_grid
from medseg.io.dicom_codes import DEFAULT_TYPE, segments_for
from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg


@pytest.fixture(params=["ct", "mr"])
def series_folder(request, dicom_seg_dir, dicom_study_dir) -> Path:
    if request.param == "ct":
        return dicom_seg_dir / "dcmqi_ct3slice"
    return next(p for p in dicom_study_dir.iterdir() if "T1post" in p.name)


def test_a_two_label_map_reads_back_voxel_for_voxel(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = asymmetric_labels(image)
    segments = segments_for({1: "anterior", 2: "posterior"})
    out = write_dicom_seg(
        Image(labels, image.affine), series_folder, tmp_path / "seg.dcm", segments
    )
    np.testing.assert_array_equal(read_back(out, series_folder), labels[0])


def test_the_seg_references_the_series_and_copies_patient_and_study(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = Image(asymmetric_labels(image), image.affine)
    out = write_dicom_seg(
        labels,
        series_folder,
        tmp_path / "seg.dcm",
        segments_for({1: "a", 2: "b"}),
        run_name="hippo",
    )
    seg = pydicom.dcmread(out)
    sources = [
        pydicom.dcmread(f.path, stop_before_pixels=True) for f in series_grid(series_folder)[0]
    ]
    first = sources[0]
    assert seg.SOPClassUID == pydicom.uid.SegmentationStorage
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert seg.get(keyword) == first.get(keyword), keyword
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == first.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in sources
    }
    assert seg.SeriesInstanceUID != first.SeriesInstanceUID
    descriptions = seg.SegmentSequence
    assert [d.SegmentLabel for d in descriptions] == ["a", "b"]
    algorithm = descriptions[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "medseg" and "hippo" in str(algorithm.AlgorithmParameters)
    assert descriptions[0].SegmentAlgorithmType == "AUTOMATIC"


def test_codes_from_dataset_json_and_the_default(tmp_path, dicom_seg_dir):
    folder = dicom_seg_dir / "dcmqi_ct3slice"
    image = read_dicom_series(folder)
    labels = Image(asymmetric_labels(image), image.affine)
    segments = segments_for({1: "liver", 2: "spleen"}, {"liver": LIVER})
    seg = pydicom.dcmread(write_dicom_seg(labels, folder, tmp_path / "s.dcm", segments))
    liver, spleen = seg.SegmentSequence
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodeValue == "10200004"
    assert liver.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
    assert spleen.SegmentedPropertyTypeCodeSequence[0].CodeValue == DEFAULT_TYPE.value


@pytest.mark.parametrize(
    ("codes", "problem"),
    [
        ({"lung": LIVER}, "no label named lung"),
        ({"liver": {"type": ["SCT", "10200004"]}}, "expected [scheme, value, meaning]"),
        ({"liver": {"kind": ["SCT", "1", "x"]}}, "unknown keys"),
    ],
)
def test_bad_codes_are_refused(codes, problem):
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        segments_for({1: "liver"}, codes)


def test_a_map_off_the_series_grid_or_with_an_unnamed_label_is_refused(tmp_path, dicom_seg_dir):
    folder = dicom_seg_dir / "dcmqi_ct3slice"
    image = read_dicom_series(folder)
    labels = asymmetric_labels(image)
    segments = segments_for({1: "a", 2: "b"})
    shifted = image.affine.copy()
    shifted[0, 3] += 1.0
    with pytest.raises(ImageWriteError, match="not on the series' grid"):
        write_dicom_seg(Image(labels, shifted), folder, tmp_path / "s.dcm", segments)
    with pytest.raises(ImageWriteError, match="shape"):
        write_dicom_seg(
            Image(labels[:, :, :, :2], image.affine), folder, tmp_path / "s.dcm", segments
        )
    with pytest.raises(ImageWriteError, match=r"label values \[2\] have no segment"):
        write_dicom_seg(Image(labels, image.affine), folder, tmp_path / "s.dcm", segments[:1])
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_no_patient_identifier_reaches_the_warnings(tmp_path, dicom_seg_dir, recwarn):
    # the CT's PatientName has one component, which highdicom warns about, quoting it
    folder = tmp_path / "ct"
    shutil.copytree(dicom_seg_dir / "dcmqi_ct3slice", folder)
    image = read_dicom_series(folder)
    name = str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).PatientName)
    labels = Image(asymmetric_labels(image), image.affine)
    write_dicom_seg(labels, folder, tmp_path / "s.dcm", segments_for({1: "a", 2: "b"}))
    assert name and not [w for w in recwarn if name in str(w.message)]


# --- reading -----------------------------------------------------------------------------


def _highdicom_label_map(seg_path: Path, series_folder: Path) -> np.ndarray:
    """highdicom's own reading of a SEG, combined as medseg promises: per pixel the highest
    segment number covering it (fractional segments from half their maximum)."""
    import highdicom as hd

    seg = hd.seg.segread(seg_path)
    frames, _ = series_grid(series_folder)
    uids = [pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID for f in frames]
    stacked = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        combine_segments=False,
        ignore_spatial_locations=True,
        assert_missing_frames_are_empty=True,
    )  # (slices, rows, columns, segments), fractional ones rescaled to 0..1
    labels = np.zeros(stacked.shape[:3], np.uint16)
    for number in range(1, stacked.shape[-1] + 1):
        labels[stacked[..., number - 1] >= 0.5] = number
    return np.transpose(labels, (2, 1, 0))


def test_reads_dcmqi_liver_seg_equal_to_the_label_map_it_was_made_from(dicom_seg_dir):
    labels, names = read_dicom_seg(
        dicom_seg_dir / "dcmqi_seg/liver.dcm", dicom_seg_dir / "dcmqi_ct3slice"
    )
    source = read_image(dicom_seg_dir / "dcmqi_seg/liver_seg.nrrd")
    assert names == {1: "Liver"}
    np.testing.assert_array_equal(labels.array, source.array.astype(np.uint16))
    np.testing.assert_allclose(labels.affine, source.affine, atol=1e-3)


def test_overlapping_segments_give_the_higher_number(dicom_seg_dir):
    seg, series = dicom_seg_dir / "dcmqi_seg/partial_overlaps.dcm", dicom_seg_dir / "dcmqi_ct3slice"
    labels, names = read_dicom_seg(seg, series)
    assert list(names) == [1, 2, 3, 4, 5]
    expected = _highdicom_label_map(seg, series)
    np.testing.assert_array_equal(labels.array[0], expected)
    assert set(np.unique(labels.array)) == {0, 1, 2, 3, 4, 5}


@pytest.fixture
def regular_ct2(dicom_seg_dir, tmp_path) -> Path:
    """pydicom's CT2 series without its far-away first slice (medseg refuses the gap)."""
    folder = tmp_path / "ct2"
    folder.mkdir()
    for name in ("17136.dcm", "17166.dcm", "17196.dcm"):
        shutil.copy(dicom_seg_dir / "pydicom_ct2_series" / name, folder / name)
    return folder


@pytest.mark.parametrize("name", ["seg_image_ct_binary.dcm", "seg_image_ct_binary_fractional.dcm"])
def test_reads_highdicoms_binary_and_fractional_segs(dicom_seg_dir, regular_ct2, name):
    seg = dicom_seg_dir / "highdicom_seg" / name
    labels, names = read_dicom_seg(seg, regular_ct2)
    assert names == {1: "first segment"}
    np.testing.assert_array_equal(labels.array[0], _highdicom_label_map(seg, regular_ct2))
    assert labels.array.any()


def test_a_frame_on_a_slice_not_in_the_folder_is_refused(dicom_seg_dir, regular_ct2):
    seg = dicom_seg_dir / "highdicom_seg/seg_image_ct_binary_overlap.dcm"  # frames on 4 slices
    with pytest.raises(ImageReadError, match="lies on no slice of the series"):
        read_dicom_seg(seg, regular_ct2)


def test_a_seg_on_another_frame_of_reference_or_not_a_seg_is_refused(dicom_seg_dir, tmp_path):
    dataset = pydicom.dcmread(dicom_seg_dir / "dcmqi_seg/liver.dcm")
    dataset.FrameOfReferenceUID = pydicom.uid.generate_uid()
    dataset.save_as(tmp_path / "moved.dcm")
    series = dicom_seg_dir / "dcmqi_ct3slice"
    with pytest.raises(ImageReadError, match="another frame of reference"):
        read_dicom_seg(tmp_path / "moved.dcm", series)
    with pytest.raises(ImageReadError, match="not a DICOM Segmentation"):
        read_dicom_seg(next(series.iterdir()), series)


def test_medsegs_own_seg_reads_back_through_medseg(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = asymmetric_labels(image)
    segments = segments_for({1: "a", 2: "b"})
    out = write_dicom_seg(Image(labels, image.affine), series_folder, tmp_path / "s.dcm", segments)
    back, names = read_dicom_seg(out, series_folder)
    assert names == {1: "a", 2: "b"}
    np.testing.assert_array_equal(back.array[0], labels[0])
    np.testing.assert_array_equal(back.affine, image.affine)


def test_dciodvfy_finds_no_error_in_the_seg(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = Image(asymmetric_labels(image), image.affine)
    segments = segments_for({1: "liver", 2: "b"}, {"liver": LIVER})
    out = write_dicom_seg(labels, series_folder, tmp_path / "seg.dcm", segments, run_name="r")
    assert dciodvfy_errors(out) == []
