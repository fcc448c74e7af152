"""The evaluation report: one self-contained HTML file (plots and overlays embedded)."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.errors import MedsegError
from medseg.io import image_files, image_suffix, read_image, same_grid, write_text_atomic
from medseg.metrics import HIGHER_IS_BETTER, Evaluation
from medseg.report.overlay import overlay_figure
from medseg.report.plots import PLOTTED_METRICS, box_strip_figure, png_data_uri

WORST_CASES = 5
#: Metrics in the summary table, with their headings.
TABLE_METRICS: dict[str, str] = {
    "dice": "Dice",
    "iou": "IoU",
    "precision": "Precision",
    "recall": "Recall",
    "specificity": "Specificity",
    "nsd": "NSD",
    "hd95": "HD95 mm",
    "hd": "HD mm",
    "assd": "ASSD mm",
    "ref_volume_ml": "Ref. volume ml",
    "volume_diff_ml": "Vol. diff. ml",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f3f3f3; } td.name { text-align: left; }
.plots, .cases { display: flex; flex-wrap: wrap; gap: 0.5em; }
figure { margin: 0; } figcaption { font-size: 0.8em; text-align: center; }
.note { color: #555; font-size: 0.85em; }
.ref { color: #00a000; font-weight: bold; } .pred { color: #e02020; font-weight: bold; }
"""


def _number(value: object, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def _summary_table(evaluation: Evaluation) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("label", "metric", "n", "undef.", "mean", "std", "median", "IQR", "95% CI")
    )
    body = []
    for name, entry in evaluation.summary["labels"].items():  # type: ignore[union-attr]
        for metric, heading in TABLE_METRICS.items():
            s = entry["metrics"][metric]
            iqr = f"{_number(s['q1'])} – {_number(s['q3'])}" if s["n"] else "n/a"
            ci = f"{_number(s['ci95'][0])} – {_number(s['ci95'][1])}" if s["ci95"] else "n/a"
            body.append(
                f"<tr><td class='name'>{html.escape(name)}</td><td class='name'>{heading}</td>"
                f"<td>{s['n']}</td><td>{s['undefined']}</td><td>{_number(s['mean'])}</td>"
                f"<td>{_number(s['std'])}</td><td>{_number(s['median'])}</td>"
                f"<td>{iqr}</td><td>{ci}</td></tr>"
            )
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _counts_table(evaluation: Evaluation) -> str:
    heads = (
        "label",
        "cases",
        "empty reference",
        "empty prediction",
        "empty both",
        "lesions ref.",
        "lesions pred.",
        "lesion TP",
        "FP",
        "FN",
        "lesion F1",
    )
    rows = []
    for name, e in evaluation.summary["labels"].items():  # type: ignore[union-attr]
        lesions = e.get("lesions", {})
        cells = [
            e["cases"],
            e["empty_reference"],
            e["empty_prediction"],
            e["empty_both"],
            lesions.get("reference_lesions", "n/a"),
            lesions.get("predicted_lesions", "n/a"),
            lesions.get("tp", "n/a"),
            lesions.get("fp", "n/a"),
            lesions.get("fn", "n/a"),
            _number(lesions.get("f1")),
        ]
        rows.append(
            f"<tr><td class='name'>{html.escape(name)}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    return (
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in heads)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _plots(evaluation: Evaluation) -> str:
    figures = []
    for metric, title in PLOTTED_METRICS.items():
        values = {
            name: [float(r[metric]) for r in evaluation.rows if r["label"] == label]  # type: ignore[arg-type]
            for label, name in evaluation.labels.items()
        }
        uri = png_data_uri(box_strip_figure(title, values))
        figures.append(f"<figure><img src='{uri}' alt='{html.escape(title)}'></figure>")
    return f"<div class='plots'>{''.join(figures)}</div>"


def _case_image(images_dir: Path | None, case: str) -> Path | None:
    """The first channel of a case in an nnU-Net style images folder, if there is one."""
    if images_dir is None or not images_dir.is_dir():
        return None
    for path in image_files(images_dir):
        stem = path.name[: -len(image_suffix(path.name) or "")]
        if stem in (f"{case}_0000", case):
            return path
    return None


def _worst_rows(evaluation: Evaluation, label: int) -> list[Mapping[str, object]]:
    """The cases of a label with the lowest Dice (ties: larger HD95 first); cases where
    Dice is undefined (label absent from both) are not candidates."""
    rows = [
        r
        for r in evaluation.rows
        if r["label"] == label and not math.isnan(float(r["dice"]))  # type: ignore[arg-type]
    ]

    def badness(row: Mapping[str, object]) -> tuple[float, float]:
        hd95 = float(row["hd95"])  # type: ignore[arg-type]
        return (float(row["dice"]), -(hd95 if math.isfinite(hd95) else math.inf))  # type: ignore[arg-type]

    return sorted(rows, key=badness)[:WORST_CASES]


def _worst_case_overlays(evaluation: Evaluation, images_dir: Path | None) -> str:
    sections = []
    for label, name in evaluation.labels.items():
        figures = []
        for row in _worst_rows(evaluation, label):
            case = str(row["case"])
            prediction_path, reference_path = evaluation.pairs[case]
            reference_image = read_image(reference_path)
            reference = reference_image.array[0] == label
            prediction = (
                read_image(prediction_path).array[0] == label
                if prediction_path is not None
                else np.zeros_like(reference)
            )
            background = np.zeros(reference.shape, np.float32)
            image_path = _case_image(images_dir, case)
            if image_path is not None:
                try:
                    image = read_image(image_path)
                    if same_grid(image, reference_image):
                        background = image.array[0].astype(np.float32)
                except MedsegError:
                    pass  # the overlay still shows the contours
            error = reference ^ prediction
            index = None
            if reference.ndim == 3:  # the slice with the largest error
                index = int(np.argmax(error.sum(axis=(0, 1))))
            caption = f"{case}: Dice {_number(row['dice'])}, HD95 {_number(row['hd95'], 1)} mm"
            fig = overlay_figure(
                background,
                reference.astype(np.uint8),
                prediction.astype(np.uint8),
                title=case,
                slice_index=index,
                size_inches=3.0,
            )
            figures.append(
                f"<figure><img src='{png_data_uri(fig)}' alt='{html.escape(case)}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
        if figures:
            sections.append(
                f"<h3>{html.escape(name)}</h3><div class='cases'>{''.join(figures)}</div>"
            )
    return "".join(sections) or "<p class='note'>No case with a defined Dice.</p>"


def find_images_dir(ref_dir: Path) -> Path | None:
    """The images folder beside an nnU-Net ``labelsTr``/``labelsTs`` folder, if any."""
    if ref_dir.name.startswith("labels"):
        candidate = ref_dir.parent / ("images" + ref_dir.name[len("labels") :])
        if candidate.is_dir():
            return candidate
    return None


def write_report(
    evaluation: Evaluation,
    out_dir: str | Path,
    images_dir: str | Path | None = None,
    title: str = "Segmentation evaluation",
) -> Path:
    """Write ``report.html``: the summary table, counts, a box/strip plot per metric with a
    column per label, and overlays of the worst cases per label on the slice with the
    largest error (reference green, prediction red; on the case's image when
    ``images_dir`` holds it)."""
    images = Path(images_dir) if images_dir is not None else None
    summary = evaluation.summary
    settings = summary.get("settings", {})
    direction = ", ".join(
        f"{m} {'↑' if m in HIGHER_IS_BETTER else '↓'}" for m in ("dice", "nsd", "hd95", "assd")
    )
    setting_items = "".join(
        f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>"
        for k, v in settings.items()  # type: ignore[union-attr]
    )
    mean_dice = _number(summary["mean_dice"], 4)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{summary["cases"]} case(s), mean Dice over labels {mean_dice}.
Written {dt.datetime.now().strftime("%Y-%m-%d %H:%M")} by medseg {__version__}.</p>
<p class="note">Better: {direction}. Undefined values (e.g. Dice of a label absent from both
reference and prediction) are left out of every statistic and counted in "undef.";
definitions in docs/metrics.md.</p>
<h2>Summary</h2>{_summary_table(evaluation)}
<h2>Cases and lesions</h2>{_counts_table(evaluation)}
<h2>Distributions</h2>{_plots(evaluation)}
<h2>Worst cases</h2>
<p class="note">Lowest Dice per label, on the slice with the most wrong voxels;
<span class="ref">reference</span> and <span class="pred">prediction</span> contours.</p>
{_worst_case_overlays(evaluation, images)}
<h2>Settings</h2><ul>{setting_items}</ul>
</body></html>
"""
    path = Path(out_dir) / "report.html"
    write_text_atomic(path, page)
    return path
