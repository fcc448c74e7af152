"""Scoring a folder of predictions against a folder of references.

Cases are matched by file name and scored in parallel processes; every problem found in the
inputs (a missing prediction, a grid mismatch, a non-integer map, an unknown label) is
collected and reported together, one line each, and nothing is written.
"""

from __future__ import annotations

import csv
import io as text_io
import json
import math
import multiprocessing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.datasets import load_dataset_spec
from medseg.errors import DatasetError, InputProblems, MedsegError, located
from medseg.io import Image, image_files, image_suffix, read_image, same_grid, write_text_atomic
from medseg.metrics.aggregate import summarise
from medseg.metrics.case import (
    DEFAULT_TOLERANCE_MM,
    LESION_METRICS,
    METRICS,
    CaseScores,
    absent_label_scores,
    score_case,
)
from medseg.metrics.detection import froc_from_files, is_lesion_list
from medseg.metrics.lesions import DEFAULT_LESION_IOU
from medseg.metrics.overlap import mask_ignored
from medseg.parallel import available_cores, map_in_processes
from medseg.progress import log_line

#: The lesion list `medseg predict --lesions` writes beside its predictions.
LESIONS_FILE = "lesions.csv"


def versions() -> dict[str, str]:
    """The versions a score depends on (recorded in summary.json).

    Examples
    --------
    >>> sorted(versions())
    ['medseg', 'numpy', 'python', 'scipy']
    """
    import platform

    import scipy

    return {"medseg": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "scipy": scipy.__version__}  # fmt: skip


@dataclass(frozen=True)
class EvaluationSettings:
    """How cases are scored (recorded in summary.json)."""

    tolerance_mm: float = DEFAULT_TOLERANCE_MM
    tolerances: Mapping[int | str, float] = field(default_factory=dict)
    lesion_iou: float = DEFAULT_LESION_IOU

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "nsd_tolerance_mm": self.tolerance_mm,
            "nsd_tolerance_mm_per_label": {str(k): v for k, v in sorted(self.tolerances.items())},
            "lesion_iou_threshold": self.lesion_iou,
            "lesion_connectivity": "full (8 in 2D, 26 in 3D)",
            "surface_connectivity": "face (4 in 2D, 6 in 3D)",
            "hd95": "max of the two directed 95th percentiles (linear interpolation)",
            "confidence_interval": "95% BCa bootstrap of the mean (scipy.stats.bootstrap), "
            "10000 resamples, seed 0",
        }


@dataclass
class Evaluation:
    """Per-case, per-label scores and their per-label summary.

    ``pairs`` maps each scored case to its (prediction, reference) files; the prediction is
    ``None`` for a missing one scored as empty.
    """

    rows: list[dict[str, object]]
    summary: dict[str, object]
    warnings: list[str] = field(default_factory=list)
    lesion_rows: list[dict[str, object]] = field(default_factory=list)
    pairs: dict[str, tuple[Path | None, Path]] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)


def _image_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise MedsegError(located(folder, "folder not found"))
    files = {p.name: p for p in image_files(folder)}
    if not files:
        raise MedsegError(located(folder, "folder holds no supported image files"))
    return files


@dataclass(frozen=True)
class _DatasetLabels:
    """What a dataset.json beside the references says is scored."""

    names: dict[int, str] | None = None  # label value (or region number) -> name
    ignore: int | None = None  # the ignore label: its voxels are not scored
    regions: dict[int, list[int]] | None = None  # region number -> its label values
    values: frozenset[int] | None = None  # every value a file may hold


def _labels_near(ref_dir: Path) -> _DatasetLabels:
    """The labels of a dataset.json in the reference folder or its parent, if any."""
    for candidate in (ref_dir / "dataset.json", ref_dir.parent / "dataset.json"):
        if candidate.is_file():
            try:
                spec = load_dataset_spec(candidate)
            except DatasetError:
                return _DatasetLabels()
            values = frozenset(spec.stored_values)
            if spec.regions:
                numbered = dict(enumerate(spec.regions, start=1))
                names = {k: r.name for k, r in numbered.items()}
                regions = {k: r.labels for k, r in numbered.items()}
                return _DatasetLabels(names, None, regions, values)
            return _DatasetLabels(spec.foreground_labels, spec.ignore_label, None, values)
    return _DatasetLabels()


def _resolve_tolerances(
    tolerances: Mapping[int | str, float], names: Mapping[int, str] | None
) -> dict[int, float]:
    """Per-label tolerances keyed by label value; keys may be values or dataset.json names."""
    by_name = {name: value for value, name in (names or {}).items()}
    resolved: dict[int, float] = {}
    for key, tolerance in tolerances.items():
        if isinstance(key, int) or str(key).lstrip("-").isdigit():
            resolved[int(key)] = float(tolerance)
        elif key in by_name:
            resolved[by_name[key]] = float(tolerance)
        else:
            known = ", ".join(sorted(by_name)) or "none: no dataset.json beside the references"
            raise MedsegError(f"per-label tolerance: unknown label {key!r} (names: {known})")
    return resolved


def _case_id(file_name: str) -> str:
    return file_name[: -len(image_suffix(file_name) or "")]


def _label_values(array: np.ndarray) -> set[int]:
    """The distinct values of an integer array (a histogram for small non-negative ones)."""
    if array.size and array.min() >= 0 and array.max() < 1 << 16:
        return {int(v) for v in np.flatnonzero(np.bincount(array.ravel()))}
    return {int(v) for v in np.unique(array)}


def label_map(image: Image, path: Path, problems: list[str]) -> np.ndarray | None:
    """The integer label array of a one-channel image, or None (with a problem noted)."""
    if image.channels != 1:
        problems.append(located(path, f"{image.channels} channels; a label map has 1"))
        return None
    array = image.array[0]
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            problems.append(located(path, "not an integer label map"))
            return None
        array = array.astype(np.int64)
    return array


@dataclass(frozen=True)
class _Task:
    case: str
    reference: Path
    prediction: Path | None  # None: missing, scored as empty
    labels: tuple[int, ...] | None  # None: every value found
    known: frozenset[int] | None  # labels of dataset.json, to flag unknown values
    settings: EvaluationSettings
    ignore: int | None = None  # dataset.json's ignore label: its voxels are not scored
    regions: dict[int, list[int]] | None = None  # dataset.json's regions, scored as labels


@dataclass(frozen=True)
class _Outcome:
    case: str
    scores: CaseScores | None
    problems: list[str]
    found: frozenset[int]
    voxels: int


def _score_task(task: _Task, threads: int = 1) -> _Outcome:
    """Read, check and score one case; its labels on ``threads`` threads, one in a worker
    process (the workers already share the cores)."""
    if multiprocessing.parent_process() is not None:
        threads = 1
    problems: list[str] = []
    try:
        reference_image = read_image(task.reference)
        prediction_image = (
            read_image(task.prediction)
            if task.prediction is not None
            else reference_image.with_array(np.zeros_like(reference_image.array))
        )
    except MedsegError as exc:
        return _Outcome(task.case, None, [str(exc)], frozenset(), 0)
    pred_path = task.prediction or task.reference
    reference = label_map(reference_image, task.reference, problems)
    prediction = label_map(prediction_image, pred_path, problems)
    if not same_grid(reference_image, prediction_image):
        problems.append(
            located(
                pred_path,
                f"grid {prediction_image.spatial_shape} differs from the reference's "
                f"{reference_image.spatial_shape} (shape or affine)",
            )
        )
    if reference is None or prediction is None or problems:
        return _Outcome(task.case, None, problems, frozenset(), 0)
    values = [(task.reference, _label_values(reference)), (pred_path, _label_values(prediction))]
    found = (values[0][1] | values[1][1]) - {0}
    if task.known is not None:
        for path, present in values:
            unknown = sorted(present - task.known - {0})
            if unknown:
                problems.append(located(path, f"label values {unknown} not in dataset.json"))
        if problems:
            return _Outcome(task.case, None, problems, frozenset(found), 0)
    labels = task.labels if task.labels is not None else tuple(sorted(found))
    scores = score_case(
        task.case,
        reference,
        mask_ignored(reference, prediction, task.ignore),
        labels,
        spacing=reference_image.spacing,
        tolerances=task.settings.tolerances,
        default_tolerance_mm=task.settings.tolerance_mm,
        lesion_iou=task.settings.lesion_iou,
        threads=threads,
        regions=task.regions,
    )
    return _Outcome(task.case, scores, [], frozenset(found), int(reference.size))


def default_jobs() -> int:
    """Worker processes by default: the cores this process may use."""
    return available_cores()


#: With the default --jobs, worker processes start only when the cases left would take
def _run(tasks: list[_Task], jobs: int | None, quiet: bool) -> Iterator[_Outcome]:
    """Outcomes of the tasks, in order, in ``jobs`` processes (``None``: decided from the
    time the first case took). Within this process a case's labels share the cores on
    threads."""
    threaded = partial(_score_task, threads=available_cores())
    yield from map_in_processes(threaded, tasks, jobs, "scoring", quiet)


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    labels: Sequence[int] | None = None,
    only_predicted: bool = False,
    missing_as_empty: bool = False,
    settings: EvaluationSettings | None = None,
    jobs: int | None = None,
    quiet: bool = True,
) -> Evaluation:
    """Every metric per case and label; predictions and references are matched by file name.

    Labels default to those of a ``dataset.json`` in ``REF_DIR`` or its parent (then any
    other value in a file is an error), else to every non-zero value found. A reference
    without a prediction is an error unless ``only_predicted`` (skip it, e.g. to score one
    fold's validation cases against a whole ``labelsTr``) or ``missing_as_empty`` (score it
    against an empty prediction). Predictions without a reference are reported as warnings.
    All problems are collected and raised together as :class:`InputProblems` (a single
    one as a plain :class:`MedsegError`).

    ``jobs`` worker processes score the cases; by default (``None``) one per core, started
    only when the cases left after the first would take more than a few seconds.
    """
    if only_predicted and missing_as_empty:
        raise MedsegError("choose one of only_predicted and missing_as_empty")
    settings = settings or EvaluationSettings()
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    refs, preds = _image_files(ref_dir), _image_files(pred_dir)
    problems: list[str] = []
    if only_predicted:
        refs = {name: path for name, path in refs.items() if name in preds}
        if not refs:
            raise MedsegError(located(pred_dir, "no prediction matches a reference file name"))
    elif not missing_as_empty:
        problems += [
            located(pred_dir / name, f"prediction missing (reference {refs[name]})")
            for name in sorted(set(refs) - set(preds))
        ]
    warnings = [
        located(pred_dir / name, "no reference of that name, not scored")
        for name in sorted(set(preds) - set(refs))
    ]
    near = _labels_near(ref_dir)
    names, ignore = near.names, near.ignore
    settings = replace(settings, tolerances=_resolve_tolerances(settings.tolerances, names))
    label_list = tuple(sorted({int(v) for v in labels})) if labels is not None else None
    if near.regions is not None and label_list is not None:
        unknown = sorted(set(label_list) - set(near.regions))
        if unknown:
            raise MedsegError(
                f"--labels {unknown}: the dataset's regions are 1-{len(near.regions)}"
            )
    if label_list is None and names is not None:
        label_list = tuple(sorted(names))
    known = near.values if names is not None and (labels is None or near.regions) else None
    tasks = [
        _Task(_case_id(name), path, preds.get(name), label_list, known, settings, ignore,
              near.regions)
        for name, path in sorted(refs.items())
        if name in preds or missing_as_empty
    ]  # fmt: skip
    outcomes = list(_run(tasks, jobs, quiet))
    for outcome in outcomes:
        problems += outcome.problems
    if len(problems) == 1:
        raise MedsegError(problems[0])
    if problems:
        raise InputProblems(
            problems, f"{len(problems)} problem(s) in the inputs; nothing was scored or written"
        )
    if label_list is None:  # labels found in the files: a case without one scores it absent
        label_list = tuple(sorted(set().union(*(o.found for o in outcomes)) - {ignore}))
    rows: list[dict[str, object]] = []
    lesion_rows: list[dict[str, object]] = []
    label_names = {k: (names or {}).get(k, str(k)) for k in label_list}
    for outcome in outcomes:
        assert outcome.scores is not None
        scored = {int(r["label"]): r for r in outcome.scores.metrics}  # type: ignore[call-overload]
        scored_lesions = {int(r["label"]): r for r in outcome.scores.lesions}  # type: ignore[call-overload]
        for label in label_list:
            head = {"case": outcome.case, "label": label, "label_name": label_names[label]}
            if label in scored:
                rows.append({**scored[label], **head})
                lesion_rows.append({**scored_lesions[label], **head})
            else:
                metrics, lesions = absent_label_scores(outcome.voxels)
                rows.append({**head, **metrics})
                lesion_rows.append({**head, **lesions})
        log_line(f"scored {outcome.case}", quiet)
    summary = summarise(rows, label_list, label_names, len(outcomes), lesion_rows)
    summary["settings"] = settings.as_dict() | {
        "prediction_dir": str(pred_dir.resolve()),
        "reference_dir": str(Path(ref_dir).resolve()),
        "labels": list(label_list),
        "only_predicted": only_predicted,
        "missing_as_empty": missing_as_empty,
        "ignore_label": ignore,
        "regions": {names[k]: v for k, v in near.regions.items()} if near.regions else None,
    }
    summary["versions"] = versions()
    pairs = {t.case: (t.prediction, t.reference) for t in tasks}
    lesion_list = pred_dir / LESIONS_FILE
    if lesion_list.is_file() and is_lesion_list(lesion_list):  # medseg predict --lesions
        references = {case: reference for case, (_, reference) in pairs.items()}
        summary["froc"] = froc_from_files(lesion_list, references, label_names)
    return Evaluation(rows, summary, warnings, lesion_rows, pairs, label_names)


def _format(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _csv(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    buffer = text_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row[c]) for c in columns])
    return buffer.getvalue()


#: The statistics of each metric in the wide summary (summary.csv), as column suffixes.
WIDE_STATISTICS = ("n", "mean", "std", "median", "ci95_low", "ci95_high")


def wide_summary_rows(summary: Mapping[str, object]) -> list[dict[str, object]]:
    """One row per label: its counts, then ``METRIC_STATISTIC`` for every metric and
    statistic of `WIDE_STATISTICS` (undefined: NaN)."""
    rows = []
    for name, entry in summary["labels"].items():  # type: ignore[attr-defined]
        row: dict[str, object] = {"label": entry["label"], "label_name": name}
        for key in ("cases", "empty_reference", "empty_prediction", "empty_both"):
            row[key] = entry[key]
        for metric, stats in entry["metrics"].items():
            low, high = stats["ci95"] or (None, None)
            values = {**stats, "ci95_low": low, "ci95_high": high}
            for statistic in WIDE_STATISTICS:
                value = values[statistic]
                row[f"{metric}_{statistic}"] = math.nan if value is None else value
        rows.append(row)
    return rows


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """Write ``metrics.csv`` (one row per case and label, one column per metric; undefined
    values are empty cells), ``summary.csv`` (one row per label: count, mean, std, median
    and 95% CI of every metric), ``lesions.csv`` and ``summary.json``."""
    out_dir = Path(out_dir)
    head = ["case", "label", "label_name"]
    metrics_path = out_dir / "metrics.csv"
    wide_path = out_dir / "summary.csv"
    lesions_path = out_dir / "lesions.csv"
    summary_path = out_dir / "summary.json"
    write_text_atomic(metrics_path, _csv(evaluation.rows, head + list(METRICS)))
    wide = wide_summary_rows(evaluation.summary)
    write_text_atomic(wide_path, _csv(wide, list(wide[0]) if wide else ["label"]))
    written = [metrics_path, wide_path]
    if evaluation.lesion_rows:
        write_text_atomic(lesions_path, _csv(evaluation.lesion_rows, head + list(LESION_METRICS)))
        written.append(lesions_path)
    write_text_atomic(summary_path, json.dumps(evaluation.summary, indent=2) + "\n")
    return written + [summary_path]
