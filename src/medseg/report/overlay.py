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


def save_overlay(
    image: np.ndarray,
    reference: np.ndarray | None,
    prediction: np.ndarray,
    path: str | Path,
    title: str = "",
) -> Path:
    """Write a PNG of one slice of ``image`` with label contours.

    ``image`` is ``(X, Y[, Z])``; for 3D the slice along the last axis with the most reference
    (else predicted) foreground is shown. Reference contours are green, predictions red.
    """
    origin = "upper"  # 2D files: rows run down the picture
    if image.ndim == 3:
        z = most_informative_slice(reference if reference is not None else prediction)
        # Axial view as neuro viewers show it: first axis across, second axis upwards.
        image, prediction = image[..., z].T, prediction[..., z].T
        reference = reference[..., z].T if reference is not None else None
        origin = "lower"
        title = f"{title}  (slice {z})".strip()
    low, high = _display_window(image, reference if reference is not None else prediction)
    # A bare Figure (no pyplot): no GUI backend, no global state.
    fig = Figure(figsize=(4, 4), dpi=100)
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
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
