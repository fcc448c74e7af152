"""Benchmark: DICOM-SEG and RTSTRUCT of a CT-sized series — medseg against highdicom's own
reader and rt-utils (if installed: ``pip install rt-utils``), on the same label map.

A 512×512×300 CT series is made from the real 3-slice CT of the shared data (its header, new
positions and UIDs, 1 mm apart) with a 20-label map of ellipsoids; then, in one process:

- write: ``medseg.io.dicom_seg.write_dicom_seg`` (highdicom underneath, BINARY);
- read back: ``medseg.io.dicom_seg.read_dicom_seg`` against highdicom's
  ``Segmentation.get_pixels_by_source_instance`` (both checked equal to the map);
- RTSTRUCT: ``medseg.io.rtstruct.write_rtstruct`` / ``read_rtstruct`` against rt-utils'
  ``RTStructBuilder`` (one ``add_roi`` per label, ``get_roi_mask_by_name`` per label).

Usage: python bench/dicom_seg.py [--slices 300] [--labels 20] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom


def make_series(source: Path, folder: Path, slices: int) -> None:
    """``slices`` copies of one real CT slice, 1 mm apart, one new series."""
    template = pydicom.dcmread(source)
    series = pydicom.uid.generate_uid()
    z0 = float(template.ImagePositionPatient[2])
    for k in range(slices):
        template.SeriesInstanceUID = series
        template.SOPInstanceUID = pydicom.uid.generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = k + 1
        template.ImagePositionPatient = [*template.ImagePositionPatient[:2], z0 + k]
        template.save_as(folder / f"{k:04d}.dcm")


def label_map(shape: tuple[int, int, int], labels: int, seed: int = 0) -> np.ndarray:
    """``labels`` ellipsoids of random centres and radii (later ones over earlier ones)."""
    rng = np.random.default_rng(seed)
    grid = np.ogrid[: shape[0], : shape[1], : shape[2]]
    out = np.zeros(shape, np.uint8)
    for value in range(1, labels + 1):
        centre = rng.uniform(0.2, 0.8, 3) * shape
        radii = rng.uniform(0.04, 0.12, 3) * np.array(shape[:2] + (shape[2],))
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
        out[inside] = value
    return out


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--labels", type=int, default=20)
    default = Path(os.environ.get("MEDSEG_TEST_DATA", Path(__file__).parents[2] / "shared/data"))
    parser.add_argument("--data", type=Path, default=default)
    args = parser.parse_args()

    import highdicom as hd

    from medseg.io import Image, read_dicom_series
    from medseg.io.dicom import series_grid
    from medseg.io.dicom_codes import segments_for
    from medseg.io.dicom_seg import read_dicom_seg, write_dicom_seg
    from medseg.io.rtstruct import read_rtstruct, write_rtstruct

    work = Path(tempfile.mkdtemp(prefix="bench_dicom_seg_"))
    series_dir = work / "ct"
    series_dir.mkdir()
    make_series(args.data / "dicom_seg_rtstruct/dcmqi_ct3slice/01.dcm", series_dir, args.slices)
    image = read_dicom_series(series_dir)
    labels = label_map(image.spatial_shape, args.labels)
    segments = segments_for({k: f"label {k}" for k in range(1, args.labels + 1)})
    print(
        f"series {image.spatial_shape}, {args.labels} labels, "
        f"{int((labels > 0).sum())} labelled voxels"
    )

    seg_path, seconds = timed(
        write_dicom_seg, Image(labels[None], image.affine), series_dir, work / "seg.dcm", segments
    )
    print(f"DICOM-SEG write  medseg {seconds:7.2f} s  ({seg_path.stat().st_size / 2**20:.1f} MiB)")
    (back, _), ours = timed(read_dicom_seg, seg_path, series_dir)
    assert np.array_equal(back.array[0], labels)
    frames, _ = series_grid(series_dir)
    uids = [pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID for f in frames]

    def highdicom_read():
        seg = hd.seg.segread(seg_path)
        return seg.get_pixels_by_source_instance(
            source_sop_instance_uids=uids,
            combine_segments=True,
            assert_missing_frames_are_empty=True,
        )

    theirs_array, theirs = timed(highdicom_read)  # trusts the frames' source references
    assert np.array_equal(np.transpose(theirs_array, (2, 1, 0)), labels)
    print(
        f"DICOM-SEG read   medseg {ours:7.2f} s   highdicom {theirs:7.2f} s   "
        f"ratio {theirs / ours:.1f}x"
    )

    rt_path, write_ours = timed(
        write_rtstruct, Image(labels[None], image.affine), series_dir, work / "rt.dcm", segments
    )
    (rt_back, _), read_ours = timed(read_rtstruct, rt_path, series_dir)
    dice = [
        2
        * ((rt_back.array[0] == v) & (labels == v)).sum()
        / ((rt_back.array[0] == v).sum() + (labels == v).sum())
        for v in range(1, args.labels + 1)
    ]
    print(
        f"RTSTRUCT write   medseg {write_ours:7.2f} s; read back {read_ours:.2f} s, "
        f"Dice min {min(dice):.4f}"
    )
    try:
        from rt_utils import RTStructBuilder
    except ImportError:
        print("rt-utils not installed: pip install rt-utils to time it")
        return

    def rt_utils_write():
        builder = RTStructBuilder.create_new(dicom_series_path=str(series_dir))
        for value in range(1, args.labels + 1):
            # rt-utils wants (rows, columns, slices) in its own slice order
            builder.add_roi(mask=np.transpose(labels == value, (1, 0, 2)), name=f"label {value}")
        builder.save(str(work / "rt_utils.dcm"))
        return builder

    builder, write_theirs = timed(rt_utils_write)
    print(
        f"RTSTRUCT write   rt-utils {write_theirs:7.2f} s   ratio {write_theirs / write_ours:.1f}x"
    )

    def rt_utils_read():
        loaded = RTStructBuilder.create_from(str(series_dir), str(work / "rt_utils.dcm"))
        return [loaded.get_roi_mask_by_name(f"label {v}") for v in range(1, args.labels + 1)]

    _, read_theirs = timed(rt_utils_read)
    print(f"RTSTRUCT read    rt-utils {read_theirs:7.2f} s   ratio {read_theirs / read_ours:.1f}x")


if __name__ == "__main__":
    main()
