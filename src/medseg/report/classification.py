"""``medseg evaluate-classification``: a classifier's predictions.csv scored against the true
classes, with ``summary.json``, ``cases.csv`` and an HTML report (ROC curve, confusion matrix,
reliability diagram, the most confident errors shown as images).

Binary tasks are decided at a threshold on the positive class's probability: 0.5 by default,
a given one, or Youden's on a classifier run's validation predictions (``threshold_from``);
multi-class tasks by the most probable class.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medseg import __version__
from medseg.errors import ConfigError, InputProblems, MedsegError, located
from medseg.io import image_files, read_image, write_text_atomic
from medseg.io.csv_file import read_csv_rows, write_csv_atomic
from medseg.io.outputs import prepare_output_folder
from medseg.metrics.classification import (
    accuracy,
    balanced_accuracy,
    bootstrap_interval,
    calibration,
    class_scores,
    confusion_matrix,
    multiclass_auc,
    roc_curve,
    youden_threshold,
)
from medseg.report.plots import png_data_uri

#: How many of the most confident errors the report shows.
SHOWN_ERRORS = 8


@dataclass
class ClassificationEvaluation:
    """Scores of one prediction table: ``summary`` (JSON-ready), one row per case."""

    summary: dict[str, object]
    rows: list[dict[str, object]]
    class_names: list[str]
    probabilities: np.ndarray
    truth: np.ndarray


def evaluate_classification(
    predictions: str | Path,
    labels: str | Path,
    out_dir: str | Path | None = None,
    *,
    threshold: float | None = None,
    threshold_from: str | Path | None = None,
    positive: str | None = None,
    images_dir: str | Path | None = None,
) -> tuple[ClassificationEvaluation, list[Path]]:
    """Score ``predictions`` (``case,class,p_{name}...``) against ``labels`` (``case,class``,
    e.g. a dataset's labelsTs.csv); with ``out_dir``, write summary.json, cases.csv and
    report.html (the errors drawn from ``images_dir`` when given). Returns the evaluation
    and the files written.

    Examples
    --------
    >>> evaluate_classification("preds/predictions.csv", "Dataset201_Pneumonia/labelsTs.csv",
    ...                         "scores", threshold_from="runs/pneumonia")  # doctest: +SKIP
    """
    cases, names, probabilities = read_predictions(Path(predictions))
    truth = read_truth(Path(labels), cases, names)
    if threshold is not None and threshold_from is not None:
        raise ConfigError("choose one of a threshold and a run to choose it on")
    binary = len(names) == 2
    if not binary and (threshold is not None or threshold_from is not None or positive):
        raise ConfigError(f"{len(names)} classes: thresholds and --positive are for 2 classes")
    evaluation = _score(cases, names, truth, probabilities, threshold, threshold_from, positive)
    if out_dir is None:
        return evaluation, []
    out = prepare_output_folder(out_dir)
    written = [out / "summary.json", out / "cases.csv", out / "report.html"]
    write_text_atomic(written[0], json.dumps(evaluation.summary, indent=1) + "\n")
    write_csv_atomic(written[1], list(evaluation.rows[0]), evaluation.rows)
    write_text_atomic(written[2], _report(evaluation, images_dir))
    return evaluation, written


def read_predictions(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Cases, class names (from the ``p_{name}`` columns) and probabilities ``(N, K)``."""
    rows = read_csv_rows(path, MedsegError)
    header = rows[0] if rows else []
    names = [column[2:] for column in header[2:] if column.startswith("p_")]
    if header[:2] != ["case", "class"] or len(names) < 2 or len(names) != len(header) - 2:
        raise MedsegError(located(path, "want a header 'case,class,p_{class},...'"))
    cases, values = [], []
    for number, row in enumerate(rows[1:], start=2):
        try:
            values.append([float(v) for v in row[2:]])
        except ValueError:
            raise MedsegError(located(path, f"line {number}: not a probability")) from None
        if len(row) != len(header) or not all(0 <= v <= 1 for v in values[-1]):
            problem = f"line {number}: want {len(header)} columns, p in [0, 1]"
            raise MedsegError(located(path, problem))
        cases.append(row[0])
    if len(set(cases)) != len(cases) or not cases:
        raise MedsegError(located(path, "no cases, or a case listed twice"))
    return cases, names, np.array(values)


def read_truth(path: Path, cases: list[str], names: list[str]) -> np.ndarray:
    """The true class index of each case from a ``case,class`` table (classes by name)."""
    rows = read_csv_rows(path, MedsegError)
    if not rows or [c.strip() for c in rows[0]][:2] != ["case", "class"]:
        raise MedsegError(located(path, "the first line must be 'case,class'"))
    table = {row[0].strip(): row[1].strip() for row in rows[1:] if len(row) >= 2}
    problems = [located(path, f"no class for case {c!r}") for c in cases if c not in table]
    problems += [
        located(path, f"case {c!r}: class {table[c]!r} is not one of {names}")
        for c in cases
        if c in table and table[c] not in names
    ]
    if problems:
        raise InputProblems(problems, f"{len(problems)} problem(s) in {path}; nothing scored")
    return np.array([names.index(table[c]) for c in cases])


def _threshold(names, threshold, threshold_from, positive_index) -> tuple[float, str]:
    if threshold is not None:
        return float(threshold), "given"
    if threshold_from is None:
        return 0.5, "default (0.5)"
    files = sorted(Path(threshold_from).glob("fold_*/validation.csv"))
    if not files:
        problem = "no fold_*/validation.csv to choose a threshold on"
        raise MedsegError(located(threshold_from, problem))
    truth, scores = [], []
    for file in files:
        table = read_csv_rows(file, MedsegError)
        for number, row in enumerate((dict(zip(table[0], r)) for r in table[1:]), start=2):
            try:
                truth.append(names.index(row["truth"]) == positive_index)
                scores.append(float(row[f"p_{names[positive_index]}"]))
            except (KeyError, ValueError, TypeError):
                problem = f"line {number}: want case,truth,class,p_... with the classes {names}"
                raise MedsegError(located(file, problem)) from None
    chosen = youden_threshold(np.array(truth), np.array(scores))
    return chosen, f"Youden's on {len(scores)} validation predictions of {threshold_from}"


def _score(cases, names, truth, probabilities, threshold, threshold_from, positive):
    summary: dict[str, object] = {"medseg": __version__, "cases": len(cases), "classes": names}
    if len(names) == 2:
        k = names.index(positive) if positive in names else 1
        if positive is not None and positive not in names:
            raise ConfigError(f"--positive {positive}: not one of {names}")
        cut, rule = _threshold(names, threshold, threshold_from, k)
        predicted = np.where(probabilities[:, k] >= cut, k, 1 - k)
        summary |= {"positive_class": names[k], "threshold": round(cut, 6), "threshold_rule": rule}
    else:
        predicted = probabilities.argmax(1)
    matrix = confusion_matrix(truth, predicted, len(names))
    low, high = bootstrap_interval(truth, probabilities)
    ece, bins = calibration(truth, probabilities)
    summary |= {
        "accuracy": accuracy(truth, predicted),
        "balanced_accuracy": balanced_accuracy(truth, predicted),
        "auc": multiclass_auc(truth, probabilities),
        "auc_ci95": [low, high],
        "auc_ci_method": "95% percentile bootstrap over cases, 2000 resamples, seed 0",
        "per_class": {name: class_scores(matrix, j) for j, name in enumerate(names)},
        "confusion_matrix": {"rows_true_columns_predicted": names, "counts": matrix.tolist()},
        "expected_calibration_error": ece,
        "reliability": bins,
    }
    if len(names) == 2:
        summary |= summary["per_class"][names[k]]  # type: ignore[index]
    rows = [
        {"case": c, "truth": names[t], "predicted": names[p], "correct": bool(t == p),
         **{f"p_{n}": float(v) for n, v in zip(names, row)}}
        for c, t, p, row in zip(cases, truth, predicted, probabilities)
    ]  # fmt: skip
    return ClassificationEvaluation(summary, rows, names, probabilities, truth)


def _figure(evaluation: ClassificationEvaluation, kind: str) -> str:
    fig = Figure(figsize=(4, 4))
    axes = fig.add_subplot()
    names, truth, probabilities = evaluation.class_names, evaluation.truth, evaluation.probabilities
    if kind == "roc":
        shown = [1] if len(names) == 2 else range(len(names))
        for k in shown:
            fpr, tpr = roc_curve(truth == k, probabilities[:, k])
            axes.plot(fpr, tpr, label=names[k])
        axes.plot([0, 1], [0, 1], color="#aaa", linestyle=":")
        axes.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
        axes.legend(loc="lower right", fontsize=8)
    else:
        bins = evaluation.summary["reliability"]
        centres = [(b["low"] + b["high"]) / 2 for b in bins]  # type: ignore[union-attr]
        heights = [b["accuracy"] for b in bins]  # type: ignore[index]
        axes.bar(centres, heights, width=0.09, color="#4a7bd0")
        axes.plot([0, 1], [0, 1], color="#aaa", linestyle=":")
        axes.set(xlabel="confidence", ylabel="accuracy", title="Reliability")
        axes.set(xlim=(0, 1), ylim=(0, 1))
    fig.tight_layout()
    return f"<figure><img src='{png_data_uri(fig)}' alt='{kind}'></figure>"


def _confusion_table(evaluation: ClassificationEvaluation) -> str:
    names = evaluation.class_names
    counts = evaluation.summary["confusion_matrix"]["counts"]  # type: ignore[index]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td class='name'>{html.escape(n)}</td>{''.join(f'<td>{c}</td>' for c in row)}</tr>"
        for n, row in zip(names, counts)
    )
    return f"<table><tr><th>true \\ predicted</th>{head}</tr>{body}</table>"


def _errors(evaluation: ClassificationEvaluation, images_dir: str | Path | None) -> str:
    wrong = [r for r in evaluation.rows if not r["correct"]]
    wrong.sort(key=lambda r: -max(float(r[f"p_{n}"]) for n in evaluation.class_names))  # type: ignore[arg-type]
    figures = []
    for row in wrong[:SHOWN_ERRORS]:
        confidence = float(row[f"p_{row['predicted']}"])  # type: ignore[arg-type]
        caption = f"{row['case']}: {row['truth']}, predicted {row['predicted']} ({confidence:.2f})"
        picture = _case_picture(images_dir, str(row["case"]))
        figures.append(f"<figure>{picture}<figcaption>{html.escape(caption)}</figcaption></figure>")
    if not figures:
        return "<p>No errors.</p>"
    return "<div class='cases'>" + "".join(figures) + "</div>"


def _case_picture(images_dir: str | Path | None, case: str) -> str:
    if images_dir is None:
        return ""
    found = [p for p in image_files(Path(images_dir)) if p.name.startswith(f"{case}_0000")]
    if not found:
        return ""
    array = read_image(found[0]).array[0]
    while array.ndim > 2:  # the middle slice of a volume
        array = array[..., array.shape[-1] // 2]
    fig = Figure(figsize=(2, 2))
    axes = fig.add_axes((0, 0, 1, 1))
    axes.imshow(array, cmap="gray")
    axes.axis("off")
    return f"<img src='{png_data_uri(fig)}' alt='{html.escape(case)}'>"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em} td,th{border:1px solid #ccc;"
    "padding:.2em .5em} table{border-collapse:collapse} .cases,.plots{display:flex;"
    "flex-wrap:wrap;gap:.5em} figure{margin:0} figcaption{font-size:.8em}"
)


def _number(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.3f}"


def _summary_lines(summary: dict[str, object]) -> list[tuple[str, object]]:
    low, high = summary["auc_ci95"]  # type: ignore[misc]
    lines: list[tuple[str, object]] = [
        ("cases", summary["cases"]),
        ("ROC AUC (95 % CI)", f"{_number(summary['auc'])} ({_number(low)}–{_number(high)})"),
        ("accuracy", _number(summary["accuracy"])),
        ("balanced accuracy", _number(summary["balanced_accuracy"])),
        ("expected calibration error", _number(summary["expected_calibration_error"])),
    ]
    if "threshold" in summary:
        lines += [
            (f"sensitivity ({summary['positive_class']})", _number(summary["sensitivity"])),
            ("specificity", _number(summary["specificity"])),
            ("precision", _number(summary["precision"])),
            ("F1", _number(summary["f1"])),
            ("threshold", f"{summary['threshold']:.4f}: {summary['threshold_rule']}"),
        ]
    return lines


def _report(evaluation: ClassificationEvaluation, images_dir: str | Path | None) -> str:
    summary = evaluation.summary
    table = "".join(
        f"<tr><td class='name'>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in _summary_lines(summary)
    )
    written = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Classification evaluation</title>
<style>{_STYLE}</style></head><body>
<h1>Classification evaluation</h1>
<p>Written {written} by medseg {__version__}. AUC interval:
{html.escape(str(summary["auc_ci_method"]))}.</p>
<table>{table}</table>
<h2>Confusion matrix</h2>{_confusion_table(evaluation)}
<div class="plots">{_figure(evaluation, "roc")}{_figure(evaluation, "reliability")}</div>
<h2>The most confident errors</h2>{_errors(evaluation, images_dir)}
</body></html>
"""
