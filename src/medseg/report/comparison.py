"""``medseg evaluate PRED_A PRED_B REF_DIR``: two methods scored against the same references
and compared case by case, in one report."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

from medseg import __version__
from medseg.io import write_text_atomic
from medseg.io.atomic import remove_stale_temporaries
from medseg.io.csv_file import write_csv_atomic
from medseg.io.outputs import prepare_output_folder
from medseg.metrics import HIGHER_IS_BETTER, Evaluation
from medseg.metrics.compare import Comparison, compare_evaluations
from medseg.metrics.evaluate import versions
from medseg.report.evaluation import evaluate_and_report
from medseg.report.html import FIGURES_FOLDER
from medseg.report.page import render_page
from medseg.report.plots import PLOTTED_METRICS, metric_figure, png_data_uri, save_figure

#: Metrics whose per-case differences are plotted.
DIFFERENCE_PLOTS = ("dice", "nsd", "hd95", "assd")
#: Metrics of the per-case table: A, B and B − A of each.
CASE_TABLE_METRICS = {"dice": "Dice", "nsd": "NSD", "hd95": "HD95"}
#: The columns of comparison.csv.
COMPARISON_COLUMNS = (
    "label",
    "label_name",
    "metric",
    "n",
    "mean_a",
    "mean_b",
    "mean_difference",
    "ci95_low",
    "ci95_high",
    "median_difference",
    "wilcoxon_p",
    "b_better",
    "a_better",
    "ties",
)


def _names(pred_a: Path, pred_b: Path) -> tuple[str, str]:
    """The methods' display names: their folders' names, or A and B when those are equal."""
    a, b = pred_a.resolve().name, pred_b.resolve().name
    return (a, b) if a != b else ("A", "B")


def compare_and_report(
    pred_a: str | Path,
    pred_b: str | Path,
    ref_dir: str | Path,
    out_dir: str | Path,
    **evaluate_options: Any,
) -> tuple[Comparison, list[Path]]:
    """Score both prediction folders against ``ref_dir`` (into ``OUT/A`` and ``OUT/B``, each
    a full `evaluate_and_report` output), pair them case by case, and write
    ``comparison.csv``, ``comparison.json``, ``report.html`` and the difference plots in
    ``figures/``. ``evaluate_options`` are `evaluate_and_report`'s keyword arguments.

    Examples
    --------
    >>> comparison, written = compare_and_report("preds_unet", "preds_fcn", "labelsTs",
    ...                                          "compare")  # doctest: +SKIP
    """
    out = Path(out_dir)
    prepare_output_folder(out)
    names = _names(Path(pred_a), Path(pred_b))
    evaluation_a, _ = evaluate_and_report(pred_a, ref_dir, out / "A", **evaluate_options)
    evaluation_b, _ = evaluate_and_report(pred_b, ref_dir, out / "B", **evaluate_options)
    comparison = compare_evaluations(evaluation_a, evaluation_b, names)
    settings = {
        "A": str(Path(pred_a).resolve()),
        "B": str(Path(pred_b).resolve()),
        "reference_dir": str(Path(ref_dir).resolve()),
        "difference": "B - A per case; statistics over cases where both are defined",
        "confidence_interval": "95% BCa bootstrap of the mean difference "
        "(scipy.stats.bootstrap), 10000 resamples, seed 0",
        "test": "two-sided Wilcoxon signed-rank (scipy.stats.wilcoxon), zero differences "
        "dropped, uncorrected for multiple comparisons",
        "scoring": evaluation_a.summary["settings"],
    }
    csv_path, json_path = out / "comparison.csv", out / "comparison.json"
    write_csv_atomic(
        csv_path,
        COMPARISON_COLUMNS,
        [{c: _cell(r[c], "") for c in COMPARISON_COLUMNS} for r in comparison.rows],
    )
    rows = [{k: _cell(v, None) for k, v in r.items()} for r in comparison.rows]
    record = {
        "names": list(names),
        "cases": evaluation_a.summary["cases"],
        "settings": settings,
        "versions": versions(),
        "rows": rows,
    }
    write_text_atomic(json_path, json.dumps(record, indent=2, allow_nan=False) + "\n")
    report = _write_comparison_report(comparison, evaluation_a, settings, out)
    return comparison, [out / "A", out / "B", csv_path, json_path, report, out / FIGURES_FOLDER]


def _cell(value: object, undefined: object) -> object:
    """``value``, or ``undefined`` for NaN (an empty CSV cell, a JSON null)."""
    return undefined if isinstance(value, float) and math.isnan(value) else value


def _verdict(row: dict[str, object]) -> str:
    """ "better" when the CI of B − A excludes 0 in B's favour, "worse" in A's, else ""."""
    low, high = float(row["ci95_low"]), float(row["ci95_high"])  # type: ignore[arg-type]
    if math.isnan(low) or low <= 0 <= high:
        return ""
    b_higher = low > 0
    return "better" if b_higher == (row["metric"] in HIGHER_IS_BETTER) else "worse"


def _difference_plots(comparison: Comparison, figures: Path) -> list[dict[str, str]]:
    plots = []
    remove_stale_temporaries(figures)  # what a killed earlier run left half-written there
    for metric in DIFFERENCE_PLOTS:
        values = {
            name: [
                b - a
                for (case, lab, m), (a, b) in comparison.pairs.items()
                if lab == label and m == metric
            ]
            for label, name in comparison.labels.items()
        }
        intervals = {
            r["label_name"]: (r["ci95_low"], r["ci95_high"])
            for r in comparison.rows
            if r["metric"] == metric
        }
        title = f"{PLOTTED_METRICS[metric]}: B − A"
        fig = metric_figure(title, values, intervals, zero_line=True)  # type: ignore[arg-type]
        save_figure(fig, figures / f"difference_{metric}")
        plots.append({"title": title, "uri": png_data_uri(fig)})
    return plots


def _case_rows(comparison: Comparison) -> list[dict[str, object]]:
    cases = sorted({(case, label) for case, label, _ in comparison.pairs})
    rows = []
    for case, label in cases:
        values: list[float] = []
        for metric in CASE_TABLE_METRICS:
            a, b = comparison.pairs[(case, label, metric)]
            values += [a, b, b - a]
        rows.append({"case": case, "label": comparison.labels[label], "values": values})
    return rows


def _write_comparison_report(
    comparison: Comparison, evaluation_a: Evaluation, settings: dict[str, object], out: Path
) -> Path:
    headings = ["case", "label"]
    for heading in CASE_TABLE_METRICS.values():
        headings += [f"{heading} A", f"{heading} B", f"{heading} B − A"]
    rows = [{**r, "verdict": _verdict(r)} for r in comparison.rows]
    page = render_page(
        "comparison.html",
        title=f"{comparison.names[0]} (A) against {comparison.names[1]} (B)",
        names=comparison.names,
        folders=(settings["A"], settings["B"]),
        reference=settings["reference_dir"],
        cases=evaluation_a.summary["cases"],
        written=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        rows=rows,
        plots=_difference_plots(comparison, out / FIGURES_FOLDER),
        case_headings=headings,
        case_rows=_case_rows(comparison),
        settings=[(k, str(v)) for k, v in settings.items()],
    )
    path = out / "report.html"
    write_text_atomic(path, page)
    return path
