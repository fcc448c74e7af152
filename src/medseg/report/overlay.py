"""Overlay pictures: image slices with reference and predicted contours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import nibabel as nib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from medseg.io import atomic_path

REFERENCE_COLOUR = "#00d000"
PREDICTION_COLOUR = "#ff3030"
#: Label colours: label L is drawn in ``PALETTE[(L - 1) % len(PALETTE)]``, the same in every
#: report: matplotlib's qualitative tab10, the light halves of tab20, then tab20b and tab20c
#: (60 colours, neighbouring labels far apart in hue).
PALETTE: tuple[str, ...] = tuple(
    matplotlib.colors.to_hex(colour)
    for colours in (
        matplotlib.colormaps["tab10"].colors,  # type: ignore[attr-defined]
        matplotlib.colormaps["tab20"].colors[1::2],  # type: ignore[attr-defined]
        matplotlib.colormaps["tab20b"].colors,  # type: ignore[attr-defined]
        matplotlib.colormaps["tab20c"].colors,  # type: ignore[attr-defined]
    )
    for colour in colours
)
#: Plane names by the world axis a slice is perpendicular to (nibabel's axis codes).
PLANE_NAMES = {
    "S": "axial",
    "I": "axial",
    "A": "coronal",
    "P": "coronal",
    "L": "sagittal",
    "R": "sagittal",
}


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


def label_colour(label: int) -> str:
    """The fixed colour of a label value (see `PALETTE`)."""
    return PALETTE[(int(label) - 1) % len(PALETTE)]


def _centre_index(mask: np.ndarray, axis: int) -> int | None:
    """The index along ``axis`` of the slice holding the median voxel of ``mask``."""
    other = tuple(a for a in range(mask.ndim) if a != axis)
    counts = mask.sum(axis=other)
    if not counts.any():
        return None
    return int(np.searchsorted(np.cumsum(counts), counts.sum() / 2))


def _scale_bar_mm(width_mm: float) -> float:
    """A round length near a quarter of the panel's width (1, 2 or 5 times a power of 10)."""
    target = max(width_mm / 4.0, 1e-3)
    power = 10.0 ** np.floor(np.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


def _panels(shape: Sequence[int], codes: Sequence[str] | None) -> list[tuple[int, str]]:
    """(sliced axis, plane name) of each panel: one for 2D, three for 3D."""
    if len(shape) == 2:
        return [(-1, "")]
    return [
        (axis, PLANE_NAMES.get(codes[axis], f"axis {axis}") if codes else f"axis {axis}")
        for axis in (2, 1, 0)
    ]


def planes_figure(
    image: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    affine: np.ndarray,
    names: Mapping[int, str],
    title: str = "",
    panel_inches: float = 2.6,
) -> Figure:
    """Reference (solid) and predicted (dashed) contours of every label in its `PALETTE`
    colour, over the image, with a legend naming the labels, and a millimetre scale bar.

    A 3D image shows three planes (axial, coronal, sagittal by the ``affine``'s axis codes)
    through the median wrong voxel (else the median labelled voxel, else the centre), with
    the voxels drawn at their true aspect; a 2D image shows its one plane.
    """
    spacing = np.linalg.norm(affine[:3, : image.ndim], axis=0)
    codes = nib.aff2axcodes(affine) if image.ndim == 3 else None
    focus = reference != prediction
    if not focus.any():
        focus = (reference > 0) | (prediction > 0)
    panels = _panels(image.shape, codes)
    fig = Figure(figsize=(panel_inches * len(panels), panel_inches + 0.9), dpi=100)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    present: set[int] = set()
    for ax, (axis, plane) in zip(axes, panels):
        if axis < 0:
            index, cut = None, (slice(None), slice(None))
        else:
            index = _centre_index(focus, axis)
            index = image.shape[axis] // 2 if index is None else index
            cut = tuple(index if a == axis else slice(None) for a in range(3))
        present |= _draw_panel(
            ax,
            image[cut],
            reference[cut],
            prediction[cut],
            spacing[[a for a in range(image.ndim) if a != axis]],
            three_d=axis >= 0,
        )
        ax.set_title(f"{plane} {index}".strip() if index is not None else "", fontsize=8)
    handles = [
        Line2D([], [], color=label_colour(v), lw=2, label=names.get(v, str(v)))
        for v in sorted(present)
    ]
    handles += [
        Line2D([], [], color="grey", lw=1.2, label="reference"),
        Line2D([], [], color="grey", lw=1.2, ls="--", label="prediction"),
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False
    )
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


def _draw_panel(
    ax: matplotlib.axes.Axes,
    image: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: np.ndarray,
    three_d: bool,
) -> set[int]:
    """One slice: the image in mm, each label's contours, a scale bar; returns the labels
    drawn."""
    origin = "lower" if three_d else "upper"
    if three_d:  # first remaining axis across, second upwards (as the single-slice overlay)
        image, reference, prediction = image.T, reference.T, prediction.T
        width, height = image.shape[1] * spacing[0], image.shape[0] * spacing[1]
    else:  # a 2D file: rows run down the picture
        width, height = image.shape[1] * spacing[1], image.shape[0] * spacing[0]
    extent = (0.0, float(width), 0.0, float(height))
    low, high = _display_window(image, reference | prediction)
    ax.imshow(
        image,
        cmap="gray",
        vmin=low,
        vmax=high,
        origin=origin,
        extent=extent,
        interpolation="nearest",
    )
    labels = {int(v) for v in np.unique(reference)} | {int(v) for v in np.unique(prediction)}
    labels.discard(0)
    for label in sorted(labels):
        for mask, style in ((reference, "solid"), (prediction, "dashed")):
            if (mask == label).any():
                ax.contour(
                    (mask == label).astype(np.float32),
                    levels=[0.5],
                    origin=origin,
                    extent=extent,
                    colors=label_colour(label),
                    linewidths=1.1,
                    linestyles=style,
                )
    length = _scale_bar_mm(width)
    bar = AnchoredSizeBar(
        ax.transData,
        length,
        f"{length:g} mm",
        "lower right",
        color="white",
        frameon=True,
        size_vertical=height / 80,
        fontproperties={"size": 7},
    )
    bar.patch.set(facecolor="black", alpha=0.45, edgecolor="none")  # readable on any image
    ax.add_artist(bar)
    ax.set_axis_off()
    return labels
