"""DICOM-SEG and RTSTRUCT as references for `medseg evaluate`.

A studies folder (as for ``medseg convert dicom``: one sub-folder per study, the series and
their SEG or RTSTRUCT files inside) becomes ``imagesTs/{case}_0000.nii.gz``,
``labelsTs/{case}.nii.gz`` and ``dataset.json`` in a folder the evaluation reads. A case is
named after its series folder, as ``medseg predict RUN SERIES_FOLDER`` names the prediction of
that series, so predictions and references meet by name. Segments and ROIs are numbered by
the predictions' label names when those are known (the run's dataset.json), else in the order
first seen.
"""

from __future__ import annotations

from pathlib import Path

from medseg.datasets.from_dicom import (
    LabelledSeries,
    find_labelled_series,
    label_key,
    read_labelled_series,
    renumber_labels,
    write_dataset_json,
)
from medseg.errors import DatasetError, located
from medseg.io import write_image
from medseg.progress import make_progress


def is_studies_folder(folder: str | Path) -> bool:
    """Whether ``folder`` looks like a folder of DICOM studies: sub-folders and no files of
    its own (a folder of label map files is not one)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return any(p.is_dir() for p in entries) and not any(p.is_file() for p in entries)


def write_references(
    studies_dir: str | Path,
    out: str | Path,
    label_names: dict[int, str] | None = None,
    quiet: bool = True,
) -> list[str]:
    """Write the references of ``studies_dir`` into the folder ``out`` (see the module text);
    return warnings, one per segment left out because ``label_names`` has no such name.

    A series folder name seen twice (two studies with a folder "CT", or a SEG and an
    RTSTRUCT on one series) is a `DatasetError`: predictions could not tell them apart.
    """
    out = Path(out)
    by_case: dict[str, LabelledSeries] = {}
    for item in find_labelled_series(studies_dir):
        case = item.series_folder.name
        if case in by_case:
            problem = (
                f"a second reference for a series folder named {case!r} (the first: "
                f"{by_case[case].label_file}); predictions are matched by series folder name"
            )
            raise DatasetError(located(item.label_file, problem))
        by_case[case] = item
    values = {label_key(n): (v, n) for v, n in (label_names or {}).items()}
    warnings: list[str] = []
    modalities = []
    (out / "imagesTs").mkdir(parents=True, exist_ok=True)
    (out / "labelsTs").mkdir(exist_ok=True)
    with make_progress(quiet) as progress:
        for case, item in progress.track(sorted(by_case.items()), description="references"):
            image, labels, names = read_labelled_series(item)
            renumbered, dropped = renumber_labels(item, labels, names, values, not label_names)
            warnings += [
                located(item.label_file, f"segment {name!r} is not a predicted label: not scored")
                for name in dropped
            ]
            write_image(image, out / "imagesTs" / f"{case}_0000.nii.gz")
            write_image(renumbered, out / "labelsTs" / f"{case}.nii.gz")
            modalities.append(item.modality)
    write_dataset_json(out, "references", values, modalities, len(by_case))
    return warnings
