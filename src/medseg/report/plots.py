"""Figures for the evaluation reports (matplotlib, no pyplot): PNG for the page, SVG and
300-dpi PNG files for a paper."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medseg.io import atomic_path

#: Metric -> axis title of its plot.
PLOTTED_METRICS: dict[str, str] = {
    "dice": "Dice",
    "iou": "IoU (Jaccard)",
    "precision": "Precision",
    "recall": "Recall (sensitivity)",
    "nsd": "Normalised surface Dice",
    "hd95": "HD95 (mm)",
    "hd": "Hausdorff distance (mm)",
    "assd": "ASSD (mm)",
    "volume_diff_ml": "Volume difference, predicted - reference (ml)",
}
#: Labels per row of a plot; more labels wrap into further rows.
LABELS_PER_ROW = 12
#: Resolution of the PNG files written for print (the page embeds 100 dpi).
PRINT_DPI = 300
MEAN_MARKER = {"marker": "D", "color": "white", "markeredgecolor": "black", "markersize": 5}


def png_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for a self-contained page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def save_figure(fig: Figure, stem: str | Path) -> list[Path]:
    """Write ``STEM.svg`` and a 300-dpi ``STEM.png`` (atomically; no date in the SVG, so
    the same figure gives the same file)."""
    written = []
    for suffix, options in ((".svg", {"metadata": {"Date": None}}), (".png", {"dpi": PRINT_DPI})):
        path = Path(stem).with_suffix(suffix)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix[1:], **options)  # type: ignore[arg-type]
        written.append(path)
    return written


def _rows_of(names: Sequence[str]) -> list[Sequence[str]]:
    return [names[i : i + LABELS_PER_ROW] for i in range(0, len(names), LABELS_PER_ROW)] or [[]]


def metric_figure(
    title: str,
    values_by_label: Mapping[str, Sequence[float]],
    intervals: Mapping[str, Sequence[float] | None] | None = None,
    zero_line: bool = False,
) -> Figure:
    """Per label: a box plot, every case as a jittered point, and the mean (white diamond)
    with its 95% confidence interval (black bar) from ``intervals``. Labels wrap into rows
    of `LABELS_PER_ROW` that share the value axis, so 40 or more labels stay readable.

    Undefined (NaN) values are left out; a label without any defined value shows "n/a".
    ``zero_line`` draws a line at 0 (for differences).
    """
    names = list(values_by_label)
    rows = _rows_of(names)
    columns = min(len(names), LABELS_PER_ROW) or 1
    width = max(3.4, 0.85 * columns + 1.6)
    fig = Figure(figsize=(width, 0.4 + 2.6 * len(rows)), dpi=100)
    axes = fig.subplots(len(rows), 1, sharey=True, squeeze=False)[:, 0]
    rng = np.random.default_rng(0)  # jitter only; fixed so reports are reproducible
    longest = max((len(n) for n in names), default=0)
    rotate = 35 if (len(names) > 4 and longest > 6) or longest > 14 else 0
    for ax, row in zip(axes, rows):
        for position, name in enumerate(row, start=1):
            values = np.asarray(values_by_label[name], np.float64)
            values = values[np.isfinite(values)]
            if values.size == 0:
                ax.text(position, 0.5, "n/a", ha="center", transform=ax.get_xaxis_transform())
                continue
            ax.boxplot(
                values,
                positions=[position],
                widths=0.55,
                showfliers=False,
                medianprops={"color": "#d62728"},
            )
            jitter = rng.uniform(-0.18, 0.18, values.size)
            ax.scatter(position + jitter, values, s=7, alpha=0.5, color="#1f77b4", zorder=3)
            interval = (intervals or {}).get(name)
            if interval is not None and all(math.isfinite(v) for v in interval):
                ax.plot([position + 0.36] * 2, interval, color="black", lw=1.5, zorder=4)
            ax.plot(position + 0.36, values.mean(), zorder=5, **MEAN_MARKER)
        ax.set_xticks(
            range(1, len(row) + 1),
            row,
            rotation=rotate,
            ha="right" if rotate else "center",
            fontsize=8,
        )
        ax.set_xlim(0.4, columns + 0.6)
        ax.grid(axis="y", alpha=0.3)
        if zero_line:
            ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
