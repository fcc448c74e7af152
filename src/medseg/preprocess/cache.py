"""The preprocessed cache: every training case once through the plan's preprocessing,
stored as uncompressed .npy (memory-mappable) with its geometry as JSON, so that training
reads no NIfTI or DICOM at all.

Layout of a cache folder::

    preprocessing.json      the Preprocessing it was made with, and the label values
    {case}_image.npy        float32 (C, *shape)
    {case}_label.npy        uint8/uint16 label values (not class indices) on the same grid
    {case}.json             CaseGeometry and the source files' sizes and times

The folder is built under a temporary name and moved into place when every case is done: a
failure (a bad case, Ctrl-C) never leaves a partial cache. An existing cache is reused when
it was made with the same preprocessing and its source files have not changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from medseg.datasets import Case, DatasetFolder, read_training_case
from medseg.io import write_text_atomic
from medseg.io.atomic import remove_stale_temporaries
from medseg.parallel import map_in_processes
from medseg.preprocess.pipeline import (
    CaseGeometry,
    Preprocessing,
    preprocess_image,
    preprocess_label,
)

SETTINGS_FILE = "preprocessing.json"


@dataclass(frozen=True)
class CachedCase:
    """One preprocessed case in a cache folder."""

    case_id: str
    image_path: Path
    label_path: Path
    geometry: CaseGeometry

    def load(self, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(image, label) arrays, memory-mapped by default."""
        mode = "r" if mmap else None
        return np.load(self.image_path, mmap_mode=mode), np.load(self.label_path, mmap_mode=mode)


def _sources(case: Case) -> dict[str, list[float]]:
    """Size and modification time of a case's files, to notice a changed source."""
    paths = [*case.image_paths, *([case.label_path] if case.label_path else [])]
    return {p.name: [p.stat().st_size, p.stat().st_mtime] for p in paths}


def _settings(prep: Preprocessing, label_values: list[int]) -> dict[str, object]:
    return {"preprocessing": prep.model_dump(), "label_values": label_values}


def _preprocess_case(case: Case, dataset: DatasetFolder, prep: Preprocessing, folder: Path) -> str:
    """Preprocess one case into ``folder`` (runs in a worker process)."""
    image, label = read_training_case(case, dataset.spec)
    array, geometry = preprocess_image(image, prep, case.image_paths[0])
    values = dataset.spec.stored_values
    target = preprocess_label(label, geometry, prep, values)
    np.save(folder / f"{case.case_id}_image.npy", array)
    np.save(folder / f"{case.case_id}_label.npy", target)
    record = {"geometry": geometry.model_dump(), "sources": _sources(case)}
    (folder / f"{case.case_id}.json").write_text(json.dumps(record), encoding="utf-8")
    return case.case_id


def _load_cached(folder: Path, case_id: str) -> CachedCase:
    record = json.loads((folder / f"{case_id}.json").read_text(encoding="utf-8"))
    return CachedCase(
        case_id,
        folder / f"{case_id}_image.npy",
        folder / f"{case_id}_label.npy",
        CaseGeometry.model_validate(record["geometry"]),
    )


def cache_is_current(folder: Path, dataset: DatasetFolder, prep: Preprocessing) -> bool:
    """Whether ``folder`` holds every training case preprocessed with ``prep`` from the
    dataset's current files."""
    settings = folder / SETTINGS_FILE
    if not settings.is_file():
        return False
    try:
        stored = json.loads(settings.read_text(encoding="utf-8"))
        if stored != json.loads(json.dumps(_settings(prep, dataset.spec.stored_values))):
            return False
        for case in dataset.training:
            record = json.loads((folder / f"{case.case_id}.json").read_text(encoding="utf-8"))
            if record["sources"] != json.loads(json.dumps(_sources(case))):
                return False
            for kind in ("image", "label"):
                if not (folder / f"{case.case_id}_{kind}.npy").is_file():
                    return False
    except (OSError, ValueError, KeyError):
        return False
    return True


def preprocess_dataset(
    dataset: DatasetFolder,
    prep: Preprocessing,
    folder: str | Path,
    jobs: int | None = None,
    quiet: bool = False,
) -> list[CachedCase]:
    """Preprocess every training case into the cache ``folder``, or reuse it if it is
    current; return the cached cases. ``jobs`` processes (by default one per core when the
    cases are slow enough to pay for starting them)."""
    folder = Path(folder)
    remove_stale_temporaries(folder.parent)  # the staging folders of killed runs
    if not cache_is_current(folder, dataset, prep):
        staging = folder.with_name(f".{folder.name}.building{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            work = partial(_preprocess_case, dataset=dataset, prep=prep, folder=staging)
            for _ in map_in_processes(work, dataset.training, jobs, "preprocessing", quiet):
                pass
            write_text_atomic(
                staging / SETTINGS_FILE,
                json.dumps(_settings(prep, dataset.spec.stored_values), indent=1) + "\n",
            )
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(staging)
    return [_load_cached(folder, case.case_id) for case in dataset.training]
