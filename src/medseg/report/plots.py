"""Figures for the evaluation report (matplotlib, no pyplot) and their PNG encoding."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

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


def png_data_uri(fig: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for a self-contained page."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def box_strip_figure(title: str, values_by_label: Mapping[str, Sequence[float]]) -> Figure:
    """A box plot per label with every case drawn as a jittered point over it.

    Undefined (NaN) values are left out; a label without any defined value shows an empty
    column marked "n/a".
    """
    names = list(values_by_label)
    fig = Figure(figsize=(max(3.2, 1.1 * len(names) + 1.6), 3.2), dpi=100)
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # jitter only; fixed so reports are reproducible
    for position, name in enumerate(names, start=1):
        values = np.asarray(values_by_label[name], np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            ax.text(position, 0.5, "n/a", ha="center", transform=ax.get_xaxis_transform())
            continue
        ax.boxplot(
            values,
            positions=[position],
            widths=0.5,
            showfliers=False,
            medianprops={"color": "#d62728"},
        )
        jitter = rng.uniform(-0.15, 0.15, values.size)
        ax.scatter(position + jitter, values, s=9, alpha=0.6, color="#1f77b4", zorder=3)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30 if len(names) > 4 else 0)
    ax.set_xlim(0.4, len(names) + 0.6)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
