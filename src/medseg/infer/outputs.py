"""The files a prediction is written as: a label map in the input's format family, and for a
DICOM series also a DICOM Segmentation (``--format dicom-seg``) or an RT Structure Set
(``--format rtstruct``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import ConfigError
from medseg.io import Image, write_image
from medseg.io.dicom_codes import Segment, segments_for
from medseg.runs import Plan

#: What ``--format`` accepts (comma-separated for several).
FORMATS = ("nifti", "dicom-seg", "rtstruct")
#: Formats that need a DICOM series as the input.
DICOM_FORMATS = frozenset({"dicom-seg", "rtstruct"})


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"nifti,dicom-seg"`` (or a list) as a tuple of known formats, each once.

    Examples
    --------
    >>> parse_formats("nifti,dicom-seg"), parse_formats(["dicom-seg"])
    (('nifti', 'dicom-seg'), ('dicom-seg',))
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    formats = tuple(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(
            f"--format: expected one or more of {', '.join(FORMATS)} (comma-separated), "
            f"got {','.join(names)!r}"
        )
    return formats


def run_segments(run_dir: Path, config: Plan) -> list[Segment]:
    """The run's labels as DICOM segments, coded by the ``codes`` block of the run folder's
    copy of dataset.json."""
    codes = None
    dataset_json = run_dir / "dataset.json"
    if dataset_json.is_file():
        codes = json.loads(dataset_json.read_text(encoding="utf-8")).get("codes")
    names = dict(zip(config.label_values, config.label_names))
    return segments_for(names, codes)


def write_prediction(
    labels: Image,
    out_dir: Path,
    case_id: str,
    label_suffix: str,
    formats: Sequence[str],
    *,
    dicom_series: Path | None = None,
    series: str | None = None,
    segments: Sequence[Segment] = (),
    run_name: str = "",
) -> list[Path]:
    """Write one case's label map in every format asked for; returns the files written."""
    written = []
    if "nifti" in formats:
        target = out_dir / f"{case_id}{label_suffix}"
        write_image(labels, target)
        written.append(target)
    if "dicom-seg" in formats:
        from medseg.io.dicom_seg import write_dicom_seg  # highdicom: only when asked for

        assert dicom_series is not None  # predict_paths refuses other inputs first
        target = out_dir / f"{case_id}_seg.dcm"
        write_dicom_seg(labels, dicom_series, target, segments, series=series, run_name=run_name)
        written.append(target)
    if "rtstruct" in formats:
        from medseg.io.rtstruct import write_rtstruct

        assert dicom_series is not None
        target = out_dir / f"{case_id}_rtstruct.dcm"
        write_rtstruct(labels, dicom_series, target, segments, series=series, run_name=run_name)
        written.append(target)
    return written
