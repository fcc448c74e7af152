"""``medseg postprocess --auto RUN_DIR``: choose a run's post-processing from its
cross-validation predictions and store it in the run folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.errors import (
    ConfigError,
    DatasetError,
    InputProblems,
    MedsegError,
    RunFolderError,
    located,
)
from medseg.folds import cross_validation_folders
from medseg.io import image_files, read_image, read_json_file
from medseg.metrics.evaluate import label_map
from medseg.metrics.overlap import mask_ignored
from medseg.parallel import map_in_processes
from medseg.postprocess.model import Postprocessing, save_postprocessing
from medseg.postprocess.selection import choose_postprocessing, crop_to_foreground
from medseg.progress import log_line

PLAN_FILE = "plan.json"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class _RunLabels:
    values: list[int]  # background included
    names: list[str]
    file_ending: str
    ignore: int | None = None  # the dataset's ignore label: its voxels are not scored


def _read_plan(run_dir: Path) -> _RunLabels:
    """The label values, names and file ending of a run's plan.json (read as plain JSON:
    the plan's model lives in `train`, which this package must not import)."""
    path = run_dir / PLAN_FILE
    if not path.is_file():
        raise RunFolderError(located(run_dir, f"not a medseg run folder (no {PLAN_FILE})"))
    raw = read_json_file(path, RunFolderError)
    if isinstance(raw, dict) and raw.get("task") == "classification":
        raise RunFolderError(located(path, "a classifier's plan: this command needs a "
                                     "segmentation run"))  # fmt: skip
    try:
        values = [int(v) for v in raw["label_values"]]
        names = [str(n) for n in raw["label_names"]]
        ending = str(raw["file_ending"])
        ignore = None if raw.get("ignore_label") is None else int(raw["ignore_label"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFolderError(
            located(path, f"needs label_values, label_names and file_ending ({exc!r})")
        ) from None
    if len(values) != len(names):
        raise RunFolderError(located(path, "label_values and label_names differ in length"))
    return _RunLabels(values, names, ending, ignore)


def recorded_dataset_dir(run_dir: Path, dataset_dir: str | Path | None) -> Path:
    """The dataset folder: the argument, else the one recorded in the run's manifest.json."""
    if dataset_dir is not None:
        folder = Path(dataset_dir)
        if not folder.is_dir():
            raise ConfigError(located(folder, "dataset folder not found"))
        return folder
    manifest = run_dir / MANIFEST_FILE
    recorded = None
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8")).get("dataset")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            recorded = None
    if not isinstance(recorded, str) or not recorded:
        raise ConfigError(
            located(
                run_dir,
                f"the dataset folder is not recorded (no {MANIFEST_FILE} naming it); "
                "pass --dataset DIR",
            )
        )
    folder = Path(recorded)
    if not folder.is_dir():
        raise ConfigError(
            located(manifest, f"dataset folder {folder} not found; pass --dataset DIR")
        )
    return folder


@dataclass(frozen=True)
class _CaseFiles:
    case: str
    prediction: Path
    reference: Path
    known: frozenset[int]
    ignore: int | None


@dataclass(frozen=True)
class _LoadedCase:
    case: str
    prediction: np.ndarray | None = None
    reference: np.ndarray | None = None
    spacing: tuple[float, ...] = ()
    problems: list[str] = field(default_factory=list)


def _validation_cases(run_dir: Path, labels_dir: Path, run: _RunLabels) -> list[_CaseFiles]:
    """Every fold's validation predictions paired with their reference label files."""
    folders = cross_validation_folders(run_dir)  # not fold_all_search's repeat of fold 0
    ending = run.file_ending
    found: dict[str, Path] = {}
    problems: list[str] = []
    for folder in folders:
        for path in image_files(folder):
            if not path.name.endswith(ending):
                continue
            case = path.name[: -len(ending)]
            if case in found:
                problems.append(located(path, f"case {case} is also predicted in {found[case]}"))
                continue
            found[case] = path
            if not (labels_dir / f"{case}{ending}").is_file():
                problems.append(located(path, f"no reference {labels_dir / (case + ending)}"))
    if not found:
        raise RunFolderError(
            f"no cross-validation predictions in {run_dir}/fold_*/validation; train folds first"
        )
    _raise(problems)
    known = frozenset(run.values) | ({run.ignore} if run.ignore is not None else set())
    return [
        _CaseFiles(case, path, labels_dir / f"{case}{ending}", known, run.ignore)
        for case, path in sorted(found.items())
    ]


def _raise(problems: list[str]) -> None:
    if len(problems) == 1:
        raise MedsegError(problems[0])
    if problems:
        raise InputProblems(problems, f"{len(problems)} problem(s) in the cross-validation files")


def _check_values(
    array: np.ndarray, path: Path, known: frozenset[int], problems: list[str]
) -> None:
    unknown = sorted({int(v) for v in np.unique(array)} - known)
    if unknown:
        problems.append(located(path, f"label values {unknown} are not in the run's plan.json"))


def _compact(array: np.ndarray) -> np.ndarray:
    """A copy in the smallest unsigned type that holds the labels (a crop must not keep the
    whole image alive, and cases travel between processes)."""
    top = int(array.max()) if array.size else 0
    dtype = np.uint8 if top < 1 << 8 else np.uint16 if top < 1 << 16 else np.int64
    return np.ascontiguousarray(array, dtype=dtype).copy()


def _load_case(files: _CaseFiles) -> _LoadedCase:
    """Read, check and crop one case (runs in a worker process)."""
    try:
        prediction_image = read_image(files.prediction)
        reference_image = read_image(files.reference)
    except MedsegError as exc:
        return _LoadedCase(files.case, problems=[str(exc)])
    problems: list[str] = []
    prediction = label_map(prediction_image, files.prediction, problems)
    reference = label_map(reference_image, files.reference, problems)
    if prediction is not None and reference is not None and prediction.shape != reference.shape:
        problems.append(
            located(
                files.prediction,
                f"shape {prediction.shape} differs from the reference's {reference.shape} "
                f"({files.reference})",
            )
        )
    if prediction is None or reference is None or problems:
        return _LoadedCase(files.case, problems=problems)
    # outside the crop both are background: the crops hold every label value there is
    prediction, reference = crop_to_foreground(prediction, reference)
    _check_values(prediction, files.prediction, files.known, problems)
    _check_values(reference, files.reference, files.known, problems)
    if problems:
        return _LoadedCase(files.case, problems=problems)
    prediction = mask_ignored(reference, prediction, files.ignore)  # scored nowhere
    return _LoadedCase(
        files.case, _compact(prediction), _compact(reference), reference_image.spacing
    )


def auto_postprocess(
    run_dir: str | Path,
    dataset_dir: str | Path | None = None,
    jobs: int | None = None,
    quiet: bool = False,
) -> Postprocessing:
    """Choose a run's post-processing from all folds' validation predictions and write it to
    ``RUN_DIR/postprocessing.json`` (atomically); returns the choice.

    References are ``DATASET/labelsTr/{case}{file_ending}``; the dataset folder is
    ``dataset_dir``, else the ``"dataset"`` recorded in ``RUN_DIR/manifest.json``. Cases are
    read in ``jobs`` worker processes (None: decided from the time the first case takes);
    every problem in the files is reported together and nothing is written.

    Examples
    --------
    >>> choice = auto_postprocess("runs/hippocampus", "Dataset004_Hippocampus")  # doctest: +SKIP
    >>> print(postprocessing_table(choice))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(located(run_dir, "run folder not found"))
    run = _read_plan(run_dir)
    labels_dir = recorded_dataset_dir(run_dir, dataset_dir) / "labelsTr"
    if not labels_dir.is_dir():
        raise DatasetError(located(labels_dir, "folder not found (references are read here)"))
    files = _validation_cases(run_dir, labels_dir, run)
    loaded = list(map_in_processes(_load_case, files, jobs, "reading predictions", quiet))
    _raise([problem for case in loaded for problem in case.problems])
    log_line(f"choosing post-processing on {len(loaded)} cross-validation cases", quiet)
    names = {v: n for v, n in zip(run.values, run.names) if v != 0}
    choice = choose_postprocessing(
        [(c.prediction, c.reference, c.spacing) for c in loaded],  # type: ignore[misc]
        sorted(names),
        names,
        quiet=quiet,
    )
    save_postprocessing(choice, run_dir)
    return choice
