"""The evaluation report: one self-contained HTML file (plots and overlays embedded), and
its figures as SVG and 300-dpi PNG files for a paper."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from medseg import __version__
from medseg.errors import MedsegError
from medseg.io import Image, image_files, image_suffix, read_image, same_grid, write_text_atomic
from medseg.io.atomic import remove_stale_temporaries
from medseg.metrics import HIGHER_IS_BETTER, Evaluation
from medseg.report.overlay import planes_figure
from medseg.report.page import number, render_page
from medseg.report.plots import PLOTTED_METRICS, metric_figure, png_data_uri, save_figure

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
#: Metrics of the per-case table, with their headings.
CASE_METRICS: dict[str, str] = {
    "dice": "Dice",
    "iou": "IoU",
    "nsd": "NSD",
    "hd95": "HD95 mm",
    "assd": "ASSD mm",
    "precision": "Precision",
    "recall": "Recall",
    "ref_volume_ml": "Ref. ml",
    "pred_volume_ml": "Pred. ml",
    "volume_diff_ml": "Diff. ml",
}
#: Where `write_report` puts its figures as files, inside the output folder.
FIGURES_FOLDER = "figures"


def _summary_rows(evaluation: Evaluation) -> list[dict[str, object]]:
    rows = []
    for name, entry in evaluation.summary["labels"].items():  # type: ignore[union-attr]
        for metric, heading in TABLE_METRICS.items():
            stats = entry["metrics"][metric]
            rows.append(
                {"label": name, "metric": heading, **stats, "ci": stats["ci95"] or (None, None)}
            )
    return rows


def _count_rows(evaluation: Evaluation) -> list[list[object]]:
    rows = []
    for name, entry in evaluation.summary["labels"].items():  # type: ignore[union-attr]
        lesions = entry.get("lesions", {})
        counts = [
            lesions.get(k, "n/a")
            for k in ("reference_lesions", "predicted_lesions", "tp", "fp", "fn")
        ]
        rows.append(
            [
                name,
                entry["cases"],
                entry["empty_reference"],
                entry["empty_prediction"],
                entry["empty_both"],
                *counts,
                number(lesions.get("f1")),
            ]
        )
    return rows


def _plots(evaluation: Evaluation, figures_dir: Path | None) -> list[dict[str, str]]:
    """One figure per metric (a column per label), embedded; also written to
    ``figures_dir`` as SVG and PNG."""
    plots = []
    if figures_dir is not None:  # what a killed earlier run left half-written there
        remove_stale_temporaries(figures_dir)
    labels = evaluation.summary["labels"]  # type: ignore[index]
    for metric, title in PLOTTED_METRICS.items():
        values = {
            name: [float(r[metric]) for r in evaluation.rows if r["label"] == label]  # type: ignore[arg-type]
            for label, name in evaluation.labels.items()
        }
        intervals = {name: labels[name]["metrics"][metric]["ci95"] for name in values}
        fig = metric_figure(title, values, intervals)
        if figures_dir is not None:
            save_figure(fig, figures_dir / metric)
        plots.append({"title": title, "uri": png_data_uri(fig)})
    return plots


def _case_rows(evaluation: Evaluation) -> list[dict[str, object]]:
    return [
        {"case": r["case"], "label": r["label_name"], "values": [r[m] for m in CASE_METRICS]}
        for r in evaluation.rows
    ]


def _case_image(images_dir: Path | None, case: str) -> Path | None:
    """The first channel of a case in an nnU-Net style images folder, if there is one."""
    if images_dir is None or not images_dir.is_dir():
        return None
    for path in image_files(images_dir):
        stem = path.name[: -len(image_suffix(path.name) or "")]
        if stem in (f"{case}_0000", case):
            return path
    return None


def worst_cases(evaluation: Evaluation, count: int = WORST_CASES) -> list[tuple[str, float]]:
    """The ``count`` cases with the lowest mean Dice over the labels where it is defined
    (cases without any defined Dice are not candidates), worst first, with that mean."""
    by_case: dict[str, list[float]] = {}
    for row in evaluation.rows:
        value = float(row["dice"])  # type: ignore[arg-type]
        if not math.isnan(value):
            by_case.setdefault(str(row["case"]), []).append(value)
    means = sorted((float(np.mean(v)), case) for case, v in by_case.items())
    return [(case, mean) for mean, case in means[:count]]


def _background(images_dir: Path | None, case: str, reference: Image) -> np.ndarray:
    """The case's image on the reference's grid, else a blank one."""
    image_path = _case_image(images_dir, case)
    if image_path is not None:
        try:
            image = read_image(image_path)
            if same_grid(image, reference):
                return image.array[0].astype(np.float32)
        except MedsegError:
            pass  # the overlay still shows the contours
    return np.zeros(reference.spatial_shape, np.float32)


def _worst_case_overlays(evaluation: Evaluation, images_dir: Path | None) -> list[dict]:
    figures = []
    dice = {(str(r["case"]), str(r["label_name"])): r["dice"] for r in evaluation.rows}
    for case, mean in worst_cases(evaluation):
        prediction_path, reference_path = evaluation.pairs[case]
        reference_image = read_image(reference_path)
        reference = reference_image.array[0].astype(np.int32)
        prediction = (
            read_image(prediction_path).array[0].astype(np.int32)
            if prediction_path is not None
            else np.zeros_like(reference)
        )
        fig = planes_figure(
            _background(images_dir, case, reference_image),
            reference,
            prediction,
            reference_image.affine,
            evaluation.labels,
            title=case,
        )
        per_label = sorted(
            (float(v), name)
            for (c, name), v in dice.items()  # type: ignore[arg-type]
            if c == case and not math.isnan(float(v))
        )  # type: ignore[arg-type]
        shown = ", ".join(f"{name} {value:.3f}" for value, name in per_label[:4])
        more = f" and {len(per_label) - 4} more" if len(per_label) > 4 else ""
        caption = f"{case}: mean Dice {mean:.3f} ({shown}{more})"
        figures.append({"uri": png_data_uri(fig), "name": case, "caption": caption})
    return figures


def find_images_dir(ref_dir: Path) -> Path | None:
    """The images folder beside an nnU-Net ``labelsTr``/``labelsTs`` folder, if any."""
    if ref_dir.name.startswith("labels"):
        candidate = ref_dir.parent / ("images" + ref_dir.name[len("labels") :])
        if candidate.is_dir():
            return candidate
    return None


def _settings_items(summary: Mapping[str, object]) -> list[tuple[str, str]]:
    settings = summary.get("settings", {})
    return [(str(k), str(v)) for k, v in settings.items()]  # type: ignore[union-attr]


def write_report(
    evaluation: Evaluation,
    out_dir: str | Path,
    images_dir: str | Path | None = None,
    title: str = "Segmentation evaluation",
) -> Path:
    """Write ``report.html``: the summary table, counts, a plot per metric (a column per
    label; mean and CI marked), a sortable and filterable table of every case and label,
    and the worst cases in three planes with per-label colours (on the case's image when
    ``images_dir`` holds it). The plots are also written to ``figures/METRIC.svg`` and
    ``figures/METRIC.png`` (300 dpi)."""
    out_dir = Path(out_dir)
    images = Path(images_dir) if images_dir is not None else None
    direction = ", ".join(
        f"{m} {'↑' if m in HIGHER_IS_BETTER else '↓'}" for m in ("dice", "nsd", "hd95", "assd")
    )
    page = render_page(
        "evaluation.html",
        title=title,
        cases=evaluation.summary["cases"],
        mean_dice=evaluation.summary["mean_dice"],
        written=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        version=__version__,
        direction=direction,
        summary_rows=_summary_rows(evaluation),
        count_rows=_count_rows(evaluation),
        plots=_plots(evaluation, out_dir / FIGURES_FOLDER),
        case_headings=["case", "label", *CASE_METRICS.values()],
        case_rows=_case_rows(evaluation),
        worst=_worst_case_overlays(evaluation, images),
        settings=_settings_items(evaluation.summary),
    )
    path = out_dir / "report.html"
    write_text_atomic(path, page)
    return path
