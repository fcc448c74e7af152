"""Overlay pictures: an image slice with reference and predicted contours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medseg.io import atomic_path

REFERENCE_COLOUR = "#00d000"
PREDICTION_COLOUR = "#ff3030"


def most_informative_slice(label: np.ndarray, axis: int = 2) -> int:
    """Index along ``axis`` of the slice with the most foreground voxels."""
    other = tuple(a for a in range(label.ndim) if a != axis)
    return int(np.argmax((label > 0).sum(axis=other)))


def _display_window(image: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Grey-value window: the labelled voxels' 1st-99th percentiles, widened by half their
    range on each side (clipped to the image's range).

    Percentiles of a whole CT slice are dominated by air; the labelled tissue and its
    surroundings are what a reader needs to see.
    """
    inside = image[labels > 0]
    if inside.size < 10:
        low, high = np.percentile(image, [1, 99])
    else:
        low, high = np.percentile(inside, [1, 99])
        margin = 0.5 * (high - low)
        low, high = max(low - margin, image.min()), min(high + margin, image.max())
    return float(low), float(max(high, low + 1e-6))


def overlay_figure(
    image: np.ndarray,
    reference: np.ndarray | None,
    prediction: np.ndarray,
    title: str = "",
    slice_index: int | None = None,
    size_inches: float = 4.0,
) -> Figure:
    """A figure of one slice of ``image`` with reference (green) and predicted (red) contours.

    ``image`` is ``(X, Y[, Z])``; for 3D the slice ``slice_index`` along the last axis is
    shown, by default the one with the most reference (else predicted) foreground.
    """
    origin = "upper"  # 2D files: rows run down the picture
    if image.ndim == 3:
        z = slice_index
        if z is None:
            z = most_informative_slice(reference if reference is not None else prediction)
        # Axial view as neuro viewers show it: first axis across, second axis upwards.
        image, prediction = image[..., z].T, prediction[..., z].T
        reference = reference[..., z].T if reference is not None else None
        origin = "lower"
        title = f"{title}  (slice {z})".strip()
    low, high = _display_window(image, reference if reference is not None else prediction)
    # A bare Figure (no pyplot): no GUI backend, no global state.
    fig = Figure(figsize=(size_inches, size_inches), dpi=100)
    ax = fig.subplots()
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin=origin)
    for labels, colour in ((reference, REFERENCE_COLOUR), (prediction, PREDICTION_COLOUR)):
        if labels is None:
            continue
        for value in np.unique(labels):
            if value != 0:
                ax.contour(
                    labels == value, levels=[0.5], colors=colour, linewidths=1.0, origin=origin
                )
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    fig.tight_layout()
    return fig


def save_overlay(
    image: np.ndarray,
    reference: np.ndarray | None,
    prediction: np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """Write a PNG of :func:`overlay_figure` (the slice with the most foreground)."""
    fig = overlay_figure(image, reference, prediction, title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
