"""An nnU-Net dataset from a folder of DICOM studies labelled with DICOM-SEG or RTSTRUCT.

Each study is a sub-folder of the studies folder; somewhere inside it (any depth) are the
image series and the SEG or RTSTRUCT files that reference them. Every SEG/RTSTRUCT becomes one
case: its referenced series as ``imagesTr/case_NNN_0000.nii.gz`` and its segments as
``labelsTr/case_NNN.nii.gz``, on the series' grid. Case names are made by medseg (never from
folder names or DICOM attributes, which can carry patient names); ``cases.csv`` maps each
case to the files it came from. Labels are numbered by name across all studies, in the order
first seen, names compared without case and surrounding spaces.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from medseg.errors import DatasetError, MedsegError, located
from medseg.io import Image, has_dicom_preamble, read_dicom_series, write_image
from medseg.io.atomic import remove_stale_temporaries, write_text_atomic
from medseg.io.dicom_frames import read_header
from medseg.io.outputs import prepare_output_folder
from medseg.progress import make_progress

SEG_STORAGE = str(pydicom.uid.SegmentationStorage)
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
#: How many files a studies folder may hold (a bound on the walk).
MAX_FILES = 200_000


@dataclass(frozen=True)
class LabelledSeries:
    """One case to convert: a label object and the image series it references."""

    study: Path
    label_file: Path
    series_folder: Path
    series_uid: str
    modality: str


def find_labelled_series(studies_dir: str | Path) -> list[LabelledSeries]:
    """Every SEG and RTSTRUCT under ``studies_dir``'s study folders with its series folder;
    `DatasetError` for a label object whose series is not in its study."""
    studies_dir = Path(studies_dir)
    if not studies_dir.is_dir():
        raise DatasetError(located(studies_dir, "folder not found"))
    found = []
    budget = [MAX_FILES]
    for study in sorted(
        p for p in studies_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        series, labels = _scan_study(study, budget)
        for label_file, uid in labels:
            if uid not in series:
                raise DatasetError(
                    located(label_file, "references a series that is not in its study folder")
                )
            folder, modality = series[uid]
            found.append(LabelledSeries(study, label_file, folder, uid, modality))
    if not found:
        raise DatasetError(located(studies_dir, "no DICOM-SEG or RTSTRUCT in any study folder"))
    return found


def _scan_study(study: Path, budget: list[int]) -> tuple[dict[str, tuple[Path, str]], list]:
    """The study's image series (UID -> folder, modality) and label objects (file, UID)."""
    series: dict[str, tuple[Path, str]] = {}
    labels = []
    for path in sorted(p for p in study.rglob("*") if p.is_file() and not p.is_symlink()):
        budget[0] -= 1
        if budget[0] < 0:
            raise DatasetError(
                located(study, f"more than {MAX_FILES} files under the studies folder")
            )
        if not has_dicom_preamble(path):
            continue
        header = read_header(path)
        sop_class = str(header.get("SOPClassUID", ""))
        if sop_class == SEG_STORAGE:
            labels.append((path, _referenced_series(path, header, "ReferencedSeriesSequence")))
        elif sop_class == RTSTRUCT_STORAGE:
            labels.append((path, _rtstruct_series(path, header)))
        elif "Rows" in header:
            uid = str(header.get("SeriesInstanceUID", ""))
            known = series.setdefault(
                uid, (path.parent, str(header.get("Modality", "") or "image"))
            )
            if known[0] != path.parent:
                raise DatasetError(located(path, f"series split across folders ({known[0]})"))
    return series, labels


def _referenced_series(path: Path, header: pydicom.Dataset, keyword: str) -> str:
    try:
        return str(header[keyword][0].SeriesInstanceUID)
    except (KeyError, IndexError, AttributeError):
        raise DatasetError(located(path, "names no referenced series")) from None


def _rtstruct_series(path: Path, header: pydicom.Dataset) -> str:
    try:
        frame = header.ReferencedFrameOfReferenceSequence[0]
        return str(
            frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID
        )
    except (AttributeError, IndexError, KeyError):
        raise DatasetError(located(path, "names no referenced series")) from None


def read_labelled_series(item: LabelledSeries) -> tuple[Image, Image, dict[int, str]]:
    """The series image, its label map on the same grid, and the label names."""
    image = read_dicom_series(item.series_folder, item.series_uid)
    if str(read_header(item.label_file).get("SOPClassUID", "")) == SEG_STORAGE:
        from medseg.io.dicom_seg import read_dicom_seg

        labels, names = read_dicom_seg(item.label_file, item.series_folder, item.series_uid)
    else:
        from medseg.io.rtstruct import read_rtstruct

        labels, names = read_rtstruct(item.label_file, item.series_folder, item.series_uid)
    return image, labels, names


def convert_dicom_studies(
    studies_dir: str | Path, out: str | Path, name: str | None = None, quiet: bool = False
) -> Path:
    """Build the nnU-Net dataset folder ``out`` (``DatasetNNN_Name``) from the labelled
    studies in ``studies_dir``; written whole or not at all. Returns ``out``."""
    out = Path(out)
    prepare_output_folder(out.parent)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(located(out, "exists and is not empty"))
    items = find_labelled_series(studies_dir)
    staging = out.with_name(f".{out.name}.building{os.getpid()}")
    remove_stale_temporaries(out.parent)
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "imagesTr").mkdir(parents=True)
    (staging / "labelsTr").mkdir()
    try:
        values: dict[str, tuple[int, str]] = {}  # key -> (label value, name as first seen)
        rows, modalities = [], []
        with make_progress(quiet) as progress:
            for k, item in enumerate(progress.track(items, description="converting")):
                case = f"case_{k:03d}"
                image, labels, names = read_labelled_series(item)
                write_image(image, staging / "imagesTr" / f"{case}_0000.nii.gz")
                write_image(
                    renumber_labels(item, labels, names, values)[0],
                    staging / "labelsTr" / f"{case}.nii.gz",
                )
                modalities.append(item.modality)
                rows.append(
                    [
                        case,
                        *(
                            p.relative_to(Path(studies_dir))
                            for p in (item.series_folder, item.label_file)
                        ),
                    ]
                )
        write_dataset_json(staging, name or out.name, values, modalities, len(items))
        _write_cases_csv(staging / "cases.csv", rows)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except (MedsegError, OSError, ValueError):
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def label_key(name: str) -> str:
    """A label name as names are compared: without case and surrounding or doubled spaces."""
    return " ".join(name.split()).lower()


def renumber_labels(
    item: LabelledSeries,
    labels: Image,
    names: dict[int, str],
    values: dict[str, tuple[int, str]],
    add_new: bool = True,
) -> tuple[Image, list[str]]:
    """``labels`` with each segment's value replaced by the dataset-wide value of its name
    (``values``: `label_key` -> (value, name as first seen)). A name not in ``values`` is
    added with the next value, or with ``add_new=False`` left out (background); returns the
    map and the names left out."""
    lookup = np.zeros(int(labels.array.max(initial=0)) + 1 if names else 1, np.uint16)
    seen: dict[str, str] = {}
    dropped = []
    for number, label_name in names.items():
        key = label_key(label_name)
        if not key:
            raise DatasetError(located(item.label_file, f"segment {number} has no name"))
        if key == "background":
            raise DatasetError(located(item.label_file, "a segment is named background"))
        if key in seen:
            raise DatasetError(
                located(item.label_file, f"two segments named {label_name!r} and {seen[key]!r}")
            )
        seen[key] = label_name
        if key not in values and not add_new:
            dropped.append(label_name)
            continue
        value = values.setdefault(key, (len(values) + 1, label_name.strip()))[0]
        if number < len(lookup):
            lookup[number] = value
    largest = max((value for value, _ in values.values()), default=0)
    dtype = np.uint8 if largest < 256 else np.uint16
    return Image(lookup[labels.array].astype(dtype), labels.affine), dropped


def write_dataset_json(
    folder: Path, name: str, values: dict, modalities: list[str], count: int
) -> None:
    """``folder/dataset.json``: the most common modality as the channel, labels from
    ``values`` (`renumber_labels`' table)."""
    modality = max(set(modalities), key=modalities.count)
    labels = {"background": 0, **{first: value for value, first in sorted(values.values())}}
    spec = {
        "name": name,
        "channel_names": {"0": modality},
        "labels": labels,
        "numTraining": count,
        "file_ending": ".nii.gz",
    }
    write_text_atomic(folder / "dataset.json", json.dumps(spec, indent=2) + "\n")


def _write_cases_csv(path: Path, rows: list) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["case", "series_folder", "label_file"])
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())
