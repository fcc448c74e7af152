"""Sliding-window inference with Gaussian importance weighting.

Lives in ``nn`` because training (validation) and inference both apply a network this way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F


def gaussian_importance_map(
    roi_size: Sequence[int], sigma_scale: float = 0.125, device: torch.device | None = None
) -> torch.Tensor:
    """A separable Gaussian window (peak 1) with sigma ``sigma_scale * roi_size`` per axis.

    The minimum is clamped to a small positive value so that every voxel has weight.
    """
    weights = None
    for size in roi_size:
        centre = (size - 1) / 2
        sigma = max(size * sigma_scale, 1e-3)
        axis = torch.exp(-0.5 * ((torch.arange(size, dtype=torch.float64) - centre) / sigma) ** 2)
        weights = axis if weights is None else weights[..., None] * axis
    assert weights is not None
    weights = weights / weights.max()
    return weights.clamp_min(1e-3).to(torch.float32).to(device)


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of windows of length ``roi`` covering ``size`` with at least ``overlap``.

    Examples
    --------
    >>> window_starts(10, 4, 0.5)
    [0, 2, 4, 6]
    """
    if size <= roi:
        return [0]
    step = roi * (1 - overlap)
    count = math.ceil((size - roi) / step) + 1
    return sorted({round(i * (size - roi) / (count - 1)) for i in range(count)})


@torch.no_grad()
def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: Sequence[int],
    sw_batch_size: int,
    predictor: Callable[[torch.Tensor], torch.Tensor],
    overlap: float = 0.5,
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    output_device: torch.device | None = None,
) -> torch.Tensor:
    """Apply ``predictor`` to overlapping windows of ``inputs`` and blend the outputs.

    Parameters
    ----------
    inputs
        ``(B, C, *spatial)``; spatial sizes of any value (smaller than ``roi_size`` is padded).
    roi_size
        Window size per spatial axis.
    sw_batch_size
        Windows per forward pass; windows of all batch items are pooled so passes stay full.
    predictor
        Maps ``(N, C, *roi_size)`` to ``(N, K, *roi_size)``.
    overlap
        Fraction of overlap between neighbouring windows (0.5 by default).
    mode
        ``gaussian`` (centre voxels weigh more) or ``constant`` (plain average).
    output_device
        Where the blended output accumulates (default: the input's device).

    Returns
    -------
    torch.Tensor
        ``(B, K, *spatial)`` float32: the weighted mean of the window outputs at each voxel.

    Examples
    --------
    >>> x = torch.rand(1, 1, 20, 30)
    >>> y = sliding_window_inference(x, (8, 8), 4, lambda w: w * 2)
    >>> bool(torch.allclose(y, x * 2, atol=1e-5))
    True
    """
    spatial = inputs.shape[2:]
    if len(roi_size) != len(spatial):
        raise ValueError(f"roi_size {tuple(roi_size)} does not match input {tuple(spatial)}")
    roi = [int(r) for r in roi_size]
    pads: list[int] = []
    for size, r in zip(reversed(spatial), reversed(roi)):
        extra = max(r - size, 0)
        pads += [extra // 2, extra - extra // 2]
    padded = F.pad(inputs, pads) if any(pads) else inputs
    padded_shape = padded.shape[2:]
    out_device = output_device or inputs.device
    if mode == "gaussian":
        weight = gaussian_importance_map(roi, sigma_scale, out_device)
    elif mode == "constant":
        weight = torch.ones(roi, device=out_device)
    else:
        raise ValueError(f"mode must be 'gaussian' or 'constant', got '{mode}'")

    starts = [window_starts(s, r, overlap) for s, r in zip(padded_shape, roi)]
    windows = [
        (b, tuple(slice(s, s + r) for s, r in zip(corner, roi)))
        for b in range(padded.shape[0])
        for corner in itertools.product(*starts)
    ]
    output: torch.Tensor | None = None
    weight_sum = torch.zeros(padded_shape, device=out_device)
    for first in range(0, len(windows), sw_batch_size):
        chunk = windows[first : first + sw_batch_size]
        batch = torch.stack([padded[(b, slice(None), *region)] for b, region in chunk])
        result = predictor(batch).to(out_device, torch.float32)
        if output is None:
            output = torch.zeros(
                (padded.shape[0], result.shape[1], *padded_shape), device=out_device
            )
        for (b, region), window_out in zip(chunk, result):
            output[(b, slice(None), *region)] += window_out * weight
            if b == 0:
                weight_sum[region] += weight
    assert output is not None
    output /= weight_sum
    crop = tuple(
        slice(pads[2 * i], pads[2 * i] + size) for i, size in enumerate(reversed(spatial))
    )[::-1]
    return output[(slice(None), slice(None), *crop)]


@torch.no_grad()
def predict_volume(
    network: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    patch_size: Sequence[int],
    sw_batch_size: int = 4,
    slice_axis: int | None = None,
    overlap: float = 0.5,
    activation: str = "softmax",
) -> torch.Tensor:
    """Class probabilities ``(K, *spatial)`` for one normalised image ``(C, *spatial)``: the
    softmax of the logits, or with ``activation="sigmoid"`` each output's own probability
    (region-based networks).

    With ``slice_axis`` set, a 2D network runs on every slice along that axis (the slices
    become the batch) and the result is put back in the image's axis order.
    """
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"activation must be softmax or sigmoid, got {activation!r}")

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        logits = network(windows)
        return torch.sigmoid(logits) if activation == "sigmoid" else torch.softmax(logits, 1)

    if slice_axis is None:
        return sliding_window_inference(image[None], patch_size, sw_batch_size, predictor, overlap)[
            0
        ]
    slices = image.movedim(1 + slice_axis, 0)  # (S, C, H, W)
    probs = sliding_window_inference(slices, patch_size, sw_batch_size, predictor, overlap)
    return probs.movedim(0, 1 + slice_axis)  # (K, ..., S, ...)
