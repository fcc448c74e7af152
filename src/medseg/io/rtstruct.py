"""RTSTRUCT out and in: a label map on a DICOM series as closed planar contours, and back.

Writing: each label's mask on each slice is traced at the half-way level between pixel
centres (marching squares, scikit-image), collinear points dropped, and the contour placed
in patient coordinates from the slice's own position, orientation and pixel spacing; every
contour references the image it lies on. Reading: each contour is found its slice (by the
image it references, else by its distance along the slice normal), mapped back to pixel
coordinates and filled; contours of one ROI on one slice combine by the even-odd rule, so a
contour inside another is a hole. Where ROIs overlap, the one listed later wins.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from skimage import draw, measure

from medseg import __version__
from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.atomic import atomic_path
from medseg.io.dicom import check_on_grid, series_grid
from medseg.io.dicom_codes import Segment
from medseg.io.dicom_frames import PYDICOM_ERRORS, Frame
from medseg.io.image import Image

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
#: What RT structure sets conventionally reference a study by (a retired SOP class).
STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"
#: ROI colours by segment number (cycled), as RGB.
COLOURS = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
]  # fmt: skip
#: Patient and study attributes copied from the source series.
COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
          "StudyDate", "StudyTime", "StudyID", "ReferringPhysicianName", "AccessionNumber",
          "FrameOfReferenceUID", "PositionReferenceIndicator")  # fmt: skip


#: Edge pairs tested at once by `crossing_edges` (memory: a few arrays of this many floats).
_CROSSING_PAIRS_PER_CHUNK = 2_000_000


def write_rtstruct(
    labels: Image,
    series_folder: str | Path,
    out: str | Path,
    segments: Sequence[Segment],
    *,
    series: str | None = None,
    run_name: str = "",
) -> Path:
    """Write ``labels`` (a label map on the grid of the series in ``series_folder``) as an
    RT Structure Set at ``out``, atomically: one ROI per segment, named and coloured."""
    frames, affine = series_grid(series_folder, series)
    check_on_grid(labels, frames, affine, Path(series_folder))
    if any(frame.index is not None for frame in frames):
        raise ImageWriteError(located(Path(series_folder), "RTSTRUCT needs single-frame images"))
    sources = [pydicom.dcmread(f.path, stop_before_pixels=True) for f in frames]
    dataset = _structure_set(sources, run_name)
    for number, segment in enumerate(segments, start=1):
        mask = labels.array[0] == segment.value
        present = np.nonzero(mask.any(axis=(0, 1)))[0]
        contours = [
            _contour_item(points, sources[k])
            for k in present
            for points in trace_slice(mask[:, :, k], frames[k])
        ]
        _add_roi(dataset, number, segment, contours, sources[0].FrameOfReferenceUID)
    with atomic_path(out) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    return Path(out)


def trace_slice(mask: np.ndarray, frame: Frame) -> list[np.ndarray]:
    """The closed contours of a slice's mask (indexed ``[column, row]``) as ``(n, 3)`` patient
    coordinates in mm (LPS), without the repeated closing point."""
    columns, rows = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(columns):
        return []
    corner = np.array([columns[0], rows[0]], np.float64)
    box = mask[columns[0] : columns[-1] + 1, rows[0] : rows[-1] + 1]  # trace only the mask
    padded = np.pad(box.astype(np.float32), 1)  # contours close along the box's border
    contours = []
    for traced in measure.find_contours(padded, 0.5):
        simplified = measure.approximate_polygon(traced - 1.0 + corner, tolerance=0.0)[:-1]
        if len(simplified) >= 3:
            contours.append(_to_patient(simplified, frame))
    return contours


def _to_patient(pixels: np.ndarray, frame: Frame) -> np.ndarray:
    """Points ``(column, row)`` in pixel units → patient coordinates (mm, LPS)."""
    row_direction, column_direction = _directions(frame)
    between_rows, between_columns = frame.pixel_spacing or (1.0, 1.0)
    return (
        frame.position
        + pixels[:, :1] * between_columns * row_direction
        + pixels[:, 1:2] * between_rows * column_direction
    )


def _directions(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    if frame.orientation is None or frame.position is None:
        raise ImageWriteError(located(frame.path, "an image without position or orientation"))
    return frame.orientation[:3], frame.orientation[3:]


def _structure_set(sources: list[Dataset], run_name: str) -> FileDataset:
    first = sources[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    now = datetime.datetime.now()
    for keyword in COPIED:
        setattr(dataset, keyword, first.get(keyword, ""))
    dataset.SOPClassUID, dataset.SOPInstanceUID = RTSTRUCT_STORAGE, meta.MediaStorageSOPInstanceUID
    dataset.Modality = "RTSTRUCT"
    dataset.OperatorsName = ""
    dataset.SeriesInstanceUID = pydicom.uid.generate_uid()
    dataset.SeriesNumber = int(first.get("SeriesNumber", 0) or 0) + 2000
    dataset.SeriesDescription = f"medseg contours {run_name}".strip()[:64]
    dataset.InstanceNumber = 1
    dataset.Manufacturer = "medseg"
    dataset.SoftwareVersions = __version__
    dataset.StructureSetLabel = "medseg"
    dataset.StructureSetName = run_name[:64]
    dataset.StructureSetDate, dataset.StructureSetTime = (
        now.strftime("%Y%m%d"),
        now.strftime("%H%M%S"),
    )
    dataset.SeriesDate, dataset.SeriesTime = dataset.StructureSetDate, dataset.StructureSetTime
    images = DicomSequence([_image_reference(s) for s in sources])
    series = Dataset()
    series.SeriesInstanceUID, series.ContourImageSequence = first.SeriesInstanceUID, images
    study = Dataset()
    study.ReferencedSOPClassUID, study.ReferencedSOPInstanceUID = (
        STUDY_COMPONENT,
        first.StudyInstanceUID,
    )
    study.RTReferencedSeriesSequence = DicomSequence([series])
    frame_of_reference = Dataset()
    frame_of_reference.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_of_reference.RTReferencedStudySequence = DicomSequence([study])
    dataset.ReferencedFrameOfReferenceSequence = DicomSequence([frame_of_reference])
    dataset.StructureSetROISequence = DicomSequence()
    dataset.ROIContourSequence = DicomSequence()
    dataset.RTROIObservationsSequence = DicomSequence()
    return dataset


def _image_reference(source: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = (
        source.SOPClassUID,
        source.SOPInstanceUID,
    )
    return item


def _contour_item(points: np.ndarray, source: Dataset) -> Dataset:
    item = Dataset()
    item.ContourImageSequence = DicomSequence([_image_reference(source)])
    item.ContourGeometricType = "CLOSED_PLANAR"
    item.NumberOfContourPoints = len(points)
    item.ContourData = [f"{v:.4f}" for v in points.ravel()]
    return item


def _add_roi(
    dataset: Dataset, number: int, segment: Segment, contours: list[Dataset], frame_uid: str
) -> None:
    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID = number, frame_uid
    roi.ROIName, roi.ROIGenerationAlgorithm = segment.name[:64], "AUTOMATIC"
    dataset.StructureSetROISequence.append(roi)
    contour = Dataset()
    contour.ReferencedROINumber = number
    contour.ROIDisplayColor = list(COLOURS[(number - 1) % len(COLOURS)])
    contour.ContourSequence = DicomSequence(contours)
    dataset.ROIContourSequence.append(contour)
    observation = Dataset()
    observation.ObservationNumber, observation.ReferencedROINumber = number, number
    observation.RTROIInterpretedType, observation.ROIInterpreter = "ORGAN", ""
    dataset.RTROIObservationsSequence.append(observation)


# --- reading ------------------------------------------------------------------------------


def read_rtstruct(
    path: str | Path, series_folder: str | Path, series: str | None = None
) -> tuple[Image, dict[int, str]]:
    """The ROIs of an RT Structure Set as a label map on the grid of the series it references
    (in ``series_folder``; ``series`` picks one of several there): ROI k (in the file's
    order) becomes label k; returns the map and ``{label: ROI name}``."""
    path = Path(path)
    try:
        dataset = pydicom.dcmread(path)
        rois = {int(r.ROINumber): str(r.ROIName) for r in dataset.StructureSetROISequence}
        contour_sets = list(dataset.get("ROIContourSequence", []))
    except PYDICOM_ERRORS as exc:
        raise ImageReadError(located(path, f"not a readable RT Structure Set ({exc})")) from None
    frames, affine = series_grid(series_folder, series)
    uids = [str(pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID) for f in frames]
    rows, columns, _ = frames[0].matrix
    labels = np.zeros((1, columns, rows, len(frames)), np.uint16)
    names = {}
    for label, (number, name) in enumerate(rois.items(), start=1):
        names[label] = name
        contour_set = next((c for c in contour_sets if int(c.ReferencedROINumber) == number), None)
        if contour_set is None:
            continue
        try:
            mask = _fill_roi(path, contour_set, frames, uids, (columns, rows))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            problem = f"malformed contour of ROI {name!r} ({exc})"
            raise ImageReadError(located(path, problem)) from None
        labels[0][mask] = label
    return Image(labels, affine), names


def _fill_roi(
    path: Path, contour_set: Dataset, frames: list[Frame], uids: list[str], shape
) -> np.ndarray:
    mask = np.zeros((*shape, len(frames)), bool)
    for contour in contour_set.get("ContourSequence", []):
        points = _contour_points(path, contour)
        k = _slice_of(path, contour, points, frames, uids)
        pixels = _to_pixels(points, frames[k])
        crossing = crossing_edges(pixels)
        if crossing is not None:
            raise ValueError(f"a contour crosses itself (its edges {crossing[0] + 1} and "
                             f"{crossing[1] + 1} of {len(pixels)})")  # fmt: skip
        inside = polygon_mask(pixels, shape)
        mask[:, :, k] ^= inside
    return mask


def _contour_points(path: Path, contour: Dataset) -> np.ndarray:
    """A closed planar contour's points ``(n, 3)``, or `ImageReadError`."""
    kind = str(contour.get("ContourGeometricType", ""))
    if kind != "CLOSED_PLANAR":
        raise ImageReadError(located(path, f"a {kind or 'untyped'} contour cannot be filled"))
    values = np.asarray([float(v) for v in contour.get("ContourData", [])], np.float64)
    declared = int(contour.get("NumberOfContourPoints", len(values) // 3))
    if len(values) % 3 or len(values) // 3 != declared or declared < 3:
        raise ImageReadError(
            located(path, f"a contour with {len(values)} coordinates for {declared} points")
        )
    if not np.all(np.isfinite(values)):
        raise ImageReadError(located(path, "a contour with NaN or infinite coordinates"))
    return values.reshape(-1, 3)


def _slice_of(
    path: Path, contour: Dataset, points: np.ndarray, frames: list[Frame], uids: list[str]
) -> int:
    """The slice a contour lies on: the image it references, else the nearest by position."""
    for reference in contour.get("ContourImageSequence", []):
        uid = str(reference.ReferencedSOPInstanceUID)
        if uid in uids:
            return uids.index(uid)
    row_direction, column_direction = _directions(frames[0])
    normal = np.cross(row_direction, column_direction)
    heights = np.array([float(f.position @ normal) for f in frames])
    height = float(np.mean(points @ normal))
    k = int(np.argmin(np.abs(heights - height)))
    spacing = np.min(np.diff(np.sort(heights))) if len(frames) > 1 else 1.0
    if abs(heights[k] - height) > spacing / 2:
        raise ImageReadError(
            located(path, f"a contour {height:.2f} mm along the normal lies on no slice")
        )
    return k


def _to_pixels(points: np.ndarray, frame: Frame) -> np.ndarray:
    """Patient coordinates (mm, LPS) → ``(column, row)`` pixel coordinates on ``frame``."""
    row_direction, column_direction = _directions(frame)
    between_rows, between_columns = frame.pixel_spacing or (1.0, 1.0)
    offset = points - frame.position
    return np.stack(
        [offset @ row_direction / between_columns, offset @ column_direction / between_rows], axis=1
    )


def crossing_edges(polygon: np.ndarray) -> tuple[int, int] | None:
    """The first two edges of the closed polygon ``(n, 2)`` that cross, each passing strictly
    through the other; None if none do. Edges that only touch (at a vertex, or running along
    each other as in a keyhole contour's channel) do not cross.

    Examples
    --------
    >>> crossing_edges(np.array([[0, 0], [2, 0], [2, 2], [0, 2]], float)) is None
    True
    >>> crossing_edges(np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float))
    (0, 2)
    """
    start, end = polygon, np.roll(polygon, -1, axis=0)  # edge k runs start[k] -> end[k]
    direction = end - start
    count = len(polygon)
    chunk = max(1, _CROSSING_PAIRS_PER_CHUNK // count)  # bounds the memory of one pass

    def side(edge: np.ndarray, point: np.ndarray) -> np.ndarray:
        """Which side of ``edge`` each ``point`` is on (-1, 0 on its line, 1)."""
        return np.sign(direction[edge, 0] * (point[..., 1] - start[edge, 1])
                       - direction[edge, 1] * (point[..., 0] - start[edge, 0]))  # fmt: skip

    for first in range(0, count, chunk):
        i = np.arange(first, min(first + chunk, count))[:, None]
        j = np.arange(count)[None, :]
        crosses = (side(i, start[j]) * side(i, end[j]) < 0) & (
            side(j, start[i]) * side(j, end[i]) < 0
        )
        found = np.argwhere(crosses & (j > i))
        if len(found):
            return int(i[found[0, 0], 0]), int(found[0, 1])
    return None


def polygon_mask(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The pixels (indexed ``[column, row]``) whose centres lie inside a closed polygon."""
    columns, rows = draw.polygon(pixels[:, 0], pixels[:, 1], shape=shape)
    mask = np.zeros(shape, bool)
    mask[columns, rows] = True
    return mask
