"""RTSTRUCT out and in on real DICOM series: contours that land where the labels were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from dicom_helpers import asymmetric_labels, dciodvfy_errors
from medseg.errors import ImageReadError
from medseg.io import Image, read_dicom_series
from medseg.io.dicom_codes import segments_for
from medseg.io.rtstruct import COLOURS, crossing_edges, read_rtstruct, write_rtstruct


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(params=["ct", "mr"])
def series_folder(request, dicom_seg_dir, dicom_study_dir) -> Path:
    if request.param == "ct":
        return dicom_seg_dir / "dcmqi_ct3slice"
    return next(p for p in dicom_study_dir.iterdir() if "T1post" in p.name)


def labels_with_a_hole(image: Image) -> np.ndarray:
    labels = asymmetric_labels(image)
    _, x, y, _ = labels.shape
    labels[0, x // 5 + 4 : x // 5 + 9, y // 6 + 4 : y // 6 + 9, :] = 0  # a hole in label 1
    labels[0, x - 6 : x - 3, 2:5, -1] = 1  # a small island on the last slice
    return labels


def test_contours_rasterise_back_onto_the_labels(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = labels_with_a_hole(image)
    segments = segments_for({1: "anterior", 2: "posterior"})
    out = write_rtstruct(Image(labels, image.affine), series_folder, tmp_path / "rt.dcm", segments)
    back, names = read_rtstruct(out, series_folder)
    assert names == {1: "anterior", 2: "posterior"}
    np.testing.assert_array_equal(back.affine, image.affine)
    for value in (1, 2):
        assert dice(back.array[0] == value, labels[0] == value) >= 0.98
    # never flipped: the one-slice corner of label 2 and the hole come back where they were
    assert back.array[0, 1, 1, 0] == 2 and back.array[0, 1, 1, -1] != 2
    _, x, y, _ = labels.shape
    assert back.array[0, x // 5 + 6, y // 6 + 6, 0] == 0


def test_the_structure_set_references_every_image_and_names_its_rois(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = Image(labels_with_a_hole(image), image.affine)
    out = write_rtstruct(labels, series_folder, tmp_path / "rt.dcm", segments_for({1: "a", 2: "b"}))
    rt = pydicom.dcmread(out)
    sources = [
        pydicom.dcmread(p, stop_before_pixels=True)
        for p in sorted(series_folder.iterdir())
        if p.is_file()
    ]
    sources = [s for s in sources if "Rows" in s]
    assert rt.Modality == "RTSTRUCT" and rt.StudyInstanceUID == sources[0].StudyInstanceUID
    assert rt.PatientID == sources[0].PatientID
    (frame,) = rt.ReferencedFrameOfReferenceSequence
    assert frame.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    (series,) = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence
    referenced = {i.ReferencedSOPInstanceUID for i in series.ContourImageSequence}
    assert referenced == {s.SOPInstanceUID for s in sources}
    assert [r.ROIName for r in rt.StructureSetROISequence] == ["a", "b"]
    assert [list(c.ROIDisplayColor) for c in rt.ROIContourSequence] == [
        list(COLOURS[0]),
        list(COLOURS[1]),
    ]
    for contour in rt.ROIContourSequence[0].ContourSequence:
        assert contour.ContourGeometricType == "CLOSED_PLANAR"
        assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID in referenced


def test_reads_the_rt_utils_structure_set_with_its_hole(dicom_seg_dir):
    # ROI-1: a 24 mm square at z = 60 with a 15 mm octagon inside it (a hole)
    folder = dicom_seg_dir / "rtutils_ct_rtstruct"
    labels, names = read_rtstruct(folder / "rt.dcm", folder)
    assert names == {1: "ROI-1"}
    on_slice = labels.array[0].sum(axis=(0, 1))
    assert on_slice[0] > 0 and on_slice[1] == 0  # slice 0 is the CT at z = 60

    def pixel(x_mm: float, y_mm: float) -> int:  # LPS mm on this axial grid
        return int(
            labels.array[0, round((x_mm + 125) / 0.488281), round((y_mm + 125) / 0.488281), 0]
        )

    assert pixel(-49, -49) == 1 and pixel(-29, -49) == 1  # inside the square
    assert pixel(-39, -39) == 0  # inside the hole
    assert pixel(-60, -39) == 0  # outside
    square, hole = (24 / 0.488281) ** 2, (15 / 0.488281) ** 2
    assert abs(int(labels.array.sum()) - (square - hole)) < 0.1 * (square - hole)


def _bow_tie(data) -> list[float]:
    """The contour with its second and third points swapped: two of its edges now cross."""
    points = np.asarray([float(v) for v in data]).reshape(-1, 3)
    points[[1, 2]] = points[[2, 1]]
    return points.ravel().tolist()


def test_keyhole_contours_touch_but_do_not_cross():
    keyhole = np.array(
        [(0, 0), (10, 0), (10, 10), (0, 10), (0, 5), (3, 5),  # outer square, in along y = 5
         (3, 7), (7, 7), (7, 3), (3, 3), (3, 5), (0, 5)],  # around the hole, back out
        float,
    )  # fmt: skip
    assert crossing_edges(keyhole) is None
    assert crossing_edges(np.array([(0, 0), (4, 0), (0, 3), (4, 3)], float)) == (1, 3)
    many = np.random.default_rng(0).uniform(0, 100, (3000, 2))  # a scribble: crosses a lot
    assert crossing_edges(many) is not None


def _edit_first_contour(path: Path, out: Path, change) -> Path:
    dataset = pydicom.dcmread(path)
    change(dataset.ROIContourSequence[0].ContourSequence[0])
    dataset.save_as(out)
    return out


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: setattr(c, "ContourGeometricType", "OPEN_PLANAR"), "OPEN_PLANAR contour"),
        (lambda c: setattr(c, "NumberOfContourPoints", 99), "coordinates for 99 points"),
        (lambda c: setattr(c, "ContourData", ["nan"] * 12), "NaN or infinite"),
        (lambda c: setattr(c, "ContourData", _bow_tie(c.ContourData)), "crosses itself"),
    ],
)
def test_bad_contours_are_one_line_errors(dicom_seg_dir, tmp_path, change, problem):
    folder = dicom_seg_dir / "rtutils_ct_rtstruct"
    bad = _edit_first_contour(folder / "rt.dcm", tmp_path / "bad.dcm", change)
    with pytest.raises(ImageReadError, match=problem) as caught:
        read_rtstruct(bad, folder)
    assert str(caught.value).startswith(str(bad))


def test_a_contour_off_every_slice_is_refused(dicom_seg_dir, tmp_path):
    folder = dicom_seg_dir / "rtutils_ct_rtstruct"

    def move_away(contour):
        del contour.ContourImageSequence  # found by position, which matches no slice
        points = [float(v) for v in contour.ContourData]
        contour.ContourData = [v + 200.0 if i % 3 == 2 else v for i, v in enumerate(points)]

    bad = _edit_first_contour(folder / "rt.dcm", tmp_path / "bad.dcm", move_away)
    with pytest.raises(ImageReadError, match="lies on no slice"):
        read_rtstruct(bad, folder)


def test_dciodvfy_finds_no_error_in_the_structure_set(series_folder, tmp_path):
    image = read_dicom_series(series_folder)
    labels = Image(labels_with_a_hole(image), image.affine)
    out = write_rtstruct(labels, series_folder, tmp_path / "rt.dcm", segments_for({1: "a", 2: "b"}))
    assert dciodvfy_errors(out) == []
