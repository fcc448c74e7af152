"""Scoring a folder of predictions against a folder of references."""

from __future__ import annotations

import csv
import io as text_io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.datasets import load_dataset_spec
from medseg.errors import DatasetError, MedsegError, located
from medseg.io import image_files, image_suffix, read_image, same_grid, write_text_atomic
from medseg.metrics.overlap import dice_per_label


@dataclass
class Evaluation:
    """Per-case, per-label scores and their per-label summary."""

    rows: list[dict[str, object]]
    summary: dict[str, object]
    warnings: list[str] = field(default_factory=list)


def _image_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise MedsegError(located(folder, "folder not found"))
    files = {p.name: p for p in image_files(folder)}
    if not files:
        raise MedsegError(located(folder, "folder holds no supported image files"))
    return files


def _label_names_near(ref_dir: Path) -> dict[int, str] | None:
    """Label names from a dataset.json in the reference folder or its parent, if any."""
    for candidate in (ref_dir / "dataset.json", ref_dir.parent / "dataset.json"):
        if candidate.is_file():
            try:
                return load_dataset_spec(candidate).foreground_labels
            except DatasetError:
                return None
    return None


def evaluate_folders(
    pred_dir: str | Path,
    ref_dir: str | Path,
    labels: Sequence[int] | None = None,
    only_predicted: bool = False,
) -> Evaluation:
    """Dice per case and label; predictions and references are matched by file name.

    Labels default to those of a ``dataset.json`` beside the references, else to every
    non-zero value found. A reference without a prediction is an error unless
    ``only_predicted`` (then it is skipped, e.g. to score one fold's validation cases against
    a whole ``labelsTr``); a pair whose grids differ is an error; predictions without a
    reference are reported as warnings.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    refs, preds = _image_files(ref_dir), _image_files(pred_dir)
    missing = sorted(set(refs) - set(preds))
    if only_predicted:
        refs = {name: path for name, path in refs.items() if name in preds}
        if not refs:
            raise MedsegError(located(pred_dir, "no prediction matches a reference file name"))
    elif missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise MedsegError(located(pred_dir / missing[0], f"prediction missing{more}"))
    warnings = [
        f"{pred_dir / name}: no reference, not scored" for name in sorted(set(preds) - set(refs))
    ]
    names = _label_names_near(ref_dir)
    pairs = []
    found: set[int] = set()
    for name, ref_path in refs.items():
        reference, prediction = read_image(ref_path), read_image(preds[name])
        if not same_grid(reference, prediction):
            raise MedsegError(
                located(
                    preds[name],
                    f"grid {prediction.spatial_shape} differs from the reference's "
                    f"{reference.spatial_shape} (shape or affine)",
                )
            )
        for path, image in ((ref_path, reference), (preds[name], prediction)):
            if image.channels != 1:
                raise MedsegError(located(path, f"{image.channels} channels; a label map has 1"))
            if not np.issubdtype(image.array.dtype, np.integer) and not np.array_equal(
                image.array, np.round(image.array)
            ):
                raise MedsegError(located(path, "not an integer label map"))
        ref_arr = reference.array[0].astype(np.int64)
        pred_arr = prediction.array[0].astype(np.int64)
        if labels is None and names is None:
            found |= set(np.unique(ref_arr).tolist()) | set(np.unique(pred_arr).tolist())
        pairs.append((name, ref_arr, pred_arr))
    if labels is not None:
        label_list = sorted(int(v) for v in labels)
    elif names is not None:
        label_list = sorted(names)
    else:
        label_list = sorted(v for v in found if v != 0)
    names = names or {}
    rows: list[dict[str, object]] = []
    for name, ref_arr, pred_arr in pairs:
        case = name[: -len(image_suffix(name) or "")]
        rows += score_case(case, ref_arr, pred_arr, label_list, names)
    return Evaluation(rows, summarise(rows, label_list, names, cases=len(pairs)), warnings)


def score_case(
    case: str,
    reference: np.ndarray,
    prediction: np.ndarray,
    labels: Sequence[int],
    names: dict[int, str],
) -> list[dict[str, object]]:
    """The metric rows (one per label) of one case; `medseg evaluate` and training share it."""
    return [
        {"case": case, "label": label, "label_name": names.get(label, str(label)), "dice": value}
        for label, value in dice_per_label(reference, prediction, labels).items()
    ]


def summarise(
    rows: Sequence[dict[str, object]],
    labels: Sequence[int],
    names: dict[int, str],
    cases: int | None = None,
) -> dict[str, object]:
    """Per-label mean Dice over cases where it is defined, with counts of undefined cases."""
    per_label = {}
    means = []
    for label in labels:
        values = [float(r["dice"]) for r in rows if r["label"] == label]  # type: ignore[arg-type]
        defined = [v for v in values if not math.isnan(v)]
        mean = float(np.mean(defined)) if defined else None
        if mean is not None:
            means.append(mean)
        per_label[names.get(label, str(label))] = {
            "label": label,
            "mean_dice": mean,
            "cases": len(values),
            "undefined": len(values) - len(defined),
        }
    if cases is None:
        cases = len({r["case"] for r in rows})
    mean_dice = float(np.mean(means)) if means else None
    return {"cases": cases, "mean_dice": mean_dice, "labels": per_label}


def write_evaluation(evaluation: Evaluation, out_dir: str | Path) -> list[Path]:
    """Write ``metrics.csv`` (one row per case and label) and ``summary.json``."""
    out_dir = Path(out_dir)
    buffer = text_io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["case", "label", "label_name", "dice"])
    writer.writeheader()
    for row in evaluation.rows:
        dice = float(row["dice"])  # type: ignore[arg-type]
        writer.writerow({**row, "dice": "" if math.isnan(dice) else f"{dice:.6f}"})
    metrics_path, summary_path = out_dir / "metrics.csv", out_dir / "summary.json"
    write_text_atomic(metrics_path, buffer.getvalue())
    write_text_atomic(summary_path, json.dumps(evaluation.summary, indent=2) + "\n")
    return [metrics_path, summary_path]
