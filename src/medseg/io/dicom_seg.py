"""DICOM-SEG out and in: a label map on a DICOM series' grid as a DICOM Segmentation, and back.

highdicom builds the object: it references the source series (study, series, every SOP
instance, frame of reference), copies the patient and study attributes, and describes one
segment per label with its coded category and type and the algorithm that made it. medseg
lays the label map frame by frame onto the source images in the order `series_grid` sorts
them, so each frame lands on the image it was predicted from.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from medseg import __version__
from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.atomic import atomic_path
from medseg.io.dicom import check_on_grid, decode_pixels, series_grid
from medseg.io.dicom_codes import Segment
from medseg.io.dicom_frames import Frame, file_frames, read_header
from medseg.io.image import Image

#: The DICOM-SEG's series number: the source series' number plus this.
SERIES_NUMBER_OFFSET = 1000


def write_dicom_seg(
    labels: Image,
    series_folder: str | Path,
    out: str | Path,
    segments: Sequence[Segment],
    *,
    series: str | None = None,
    run_name: str = "",
) -> Path:
    """Write ``labels`` (a label map on the grid of the series in ``series_folder``, as
    `medseg predict` gives it) as a DICOM Segmentation at ``out``, atomically.

    Raises `ImageWriteError` when the map is not on the series' grid, or holds a value no
    segment describes.
    """
    frames, affine = series_grid(series_folder, series)
    check_on_grid(labels, frames, affine, Path(series_folder))
    segment_of = np.zeros(int(labels.array.max()) + 1, dtype=np.uint16)
    for number, segment in enumerate(segments, start=1):
        if segment.value < len(segment_of):
            segment_of[segment.value] = number
    stray = set(np.unique(labels.array).tolist()) - {0} - {s.value for s in segments}
    if stray:
        raise ImageWriteError(located(Path(out), f"label values {sorted(stray)} have no segment"))
    sources, pixels = _source_frames(frames, segment_of[labels.array[0]])
    with warnings.catch_warnings():  # highdicom's warnings quote attributes: patient names
        warnings.simplefilter("ignore")
        seg = _segmentation(sources, pixels, segments, run_name)
    with atomic_path(out) as tmp:
        seg.save_as(tmp)
    return Path(out)


def _segmentation(
    sources: list[pydicom.Dataset], pixels: np.ndarray, segments: Sequence[Segment], run_name: str
) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(n, s, run_name) for n, s in enumerate(segments, 1)],
        series_instance_uid=hd.UID(),
        series_number=int(sources[0].get("SeriesNumber", 0) or 0) + SERIES_NUMBER_OFFSET,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name="medseg",
        software_versions=__version__,
        device_serial_number="none",
        content_label="MEDSEG",
        content_description=f"medseg {run_name}".strip()[:64],
        series_description=f"medseg segmentation {run_name}".strip()[:64],
    )


def _source_frames(
    frames: list[Frame], segment_map: np.ndarray
) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """The source datasets and the SEG's frames (segment numbers), frame i on source i (a
    series of single-frame files) or on frame i of one multi-frame file."""
    slices = [segment_map[:, :, k].T for k in range(len(frames))]  # (rows, columns) each
    if all(frame.index is None for frame in frames):
        return [_source(f.path) for f in frames], np.stack(slices)
    if len({frame.path for frame in frames}) != 1:
        raise ImageWriteError(located(frames[0].path, "a series mixing multi-frame files"))
    pixels = np.zeros((len(frames), *slices[0].shape), dtype=segment_map.dtype)
    for frame, plane in zip(frames, slices):
        pixels[frame.index] = plane
    return [_source(frames[0].path)], pixels


def _source(path: Path) -> pydicom.Dataset:
    """A source image's attributes as highdicom needs them (an empty SpecificCharacterSet,
    common in real files, means the default repertoire: it is dropped)."""
    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    if "SpecificCharacterSet" in dataset and not dataset.SpecificCharacterSet:
        del dataset.SpecificCharacterSet
    return dataset


def _description(number: int, segment: Segment, run_name: str) -> hd.seg.SegmentDescription:
    algorithm = hd.AlgorithmIdentificationSequence(
        name="medseg",
        family=pydicom.sr.codedict.codes.DCM.ArtificialIntelligence,
        version=__version__,
        parameters={"run": run_name} if run_name else None,
    )
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.name[:64],
        segmented_property_category=segment.category,
        segmented_property_type=segment.type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )


# --- reading ------------------------------------------------------------------------------

#: How far (mm) a SEG frame may lie from a slice of the series and still be on it.
POSITION_TOLERANCE_MM = 1e-2


def read_dicom_seg(
    path: str | Path, series_folder: str | Path, series: str | None = None
) -> tuple[Image, dict[int, str]]:
    """A DICOM Segmentation as a label map on the grid of its source series (in
    ``series_folder``; ``series`` picks one of several there, as for `read_dicom_series`):
    segment k becomes label k; returns the map and ``{label: segment label}``.

    Each SEG frame is placed by its own position, orientation and pixel spacing (not only by
    the instance it says it was derived from), so a frame that lies on no slice, or a SEG on
    another frame of reference, is an `ImageReadError`. Where segments overlap the higher
    segment number wins; a FRACTIONAL segment covers the pixels at half its maximum or more.
    """
    path = Path(path)
    header = read_header(path)
    if str(header.get("SOPClassUID", "")) != pydicom.uid.SegmentationStorage:
        raise ImageReadError(located(path, "not a DICOM Segmentation"))
    seg_frames = file_frames(path, header)
    frames, affine = series_grid(series_folder, series)
    first = pydicom.dcmread(frames[0].path, stop_before_pixels=True)
    if header.get("FrameOfReferenceUID") != first.get("FrameOfReferenceUID"):
        raise ImageReadError(
            located(path, f"on another frame of reference than the series in {series_folder}")
        )
    names, numbers = _segments_of(path, header, len(seg_frames))
    pixels = decode_pixels(path).reshape(len(seg_frames), *seg_frames[0].matrix[:2])
    threshold = _coverage_threshold(header)
    rows, columns, _ = frames[0].matrix
    labels = np.zeros((1, columns, rows, len(frames)), np.uint16)
    positions = np.array([f.position if f.position is not None else [np.nan] * 3 for f in frames])
    for index in np.argsort(numbers, kind="stable"):  # higher segment numbers written last
        k = _slice_of_frame(path, seg_frames[index], frames, positions)
        covered = np.greater_equal(pixels[index].T, threshold)
        labels[0, :, :, k][covered] = numbers[index]
    return Image(labels, affine), names


def _segments_of(
    path: Path, header: pydicom.Dataset, count: int
) -> tuple[dict[int, str], list[int]]:
    """The segment labels by number, and each frame's segment number."""
    try:
        names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in header.SegmentSequence}
        per_frame = header.PerFrameFunctionalGroupsSequence
        numbers = [
            int(per_frame[i].SegmentIdentificationSequence[0].ReferencedSegmentNumber)
            for i in range(count)
        ]
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise ImageReadError(located(path, f"malformed segment description ({exc})")) from None
    unknown = sorted(set(numbers) - set(names))
    if unknown or min(names, default=1) < 1:
        raise ImageReadError(located(path, f"frames of undescribed segments {unknown}"))
    return names, numbers


def _coverage_threshold(header: pydicom.Dataset) -> float:
    """The stored value from which a pixel belongs to its segment."""
    if str(header.get("SegmentationType", "BINARY")) == "FRACTIONAL":
        return 0.5 * float(header.get("MaximumFractionalValue", 255) or 255)
    return 1.0


def _slice_of_frame(path: Path, frame: Frame, slices: list[Frame], positions: np.ndarray) -> int:
    """The index of the slice a SEG frame lies on: the same position within
    `POSITION_TOLERANCE_MM` (``positions``: the slices', NaN where absent), and the same
    orientation, pixel spacing and matrix."""
    if frame.position is None:
        raise ImageReadError(located(path, f"{frame.name} has no position"))
    distances = np.linalg.norm(positions - frame.position, axis=1)
    k = int(np.argmin(distances))
    if not distances[k] <= POSITION_TOLERANCE_MM:  # NaN too
        where = f"position {np.round(frame.position, 2)}"
        raise ImageReadError(
            located(path, f"{frame.name} ({where}) lies on no slice of the series")
        )
    candidate = slices[k]
    same_plane = frame.orientation is None or np.allclose(
        frame.orientation, candidate.orientation, atol=1e-4
    )
    same_pixels = frame.pixel_spacing is None or np.allclose(
        frame.pixel_spacing, candidate.pixel_spacing, rtol=1e-4
    )
    if not (same_plane and same_pixels and frame.matrix[:2] == candidate.matrix[:2]):
        raise ImageReadError(located(path, f"{frame.name} lies on a slice of another grid"))
    return k
