"""Sliding-window inference with Gaussian importance weighting.

Lives in ``nn`` because training (validation) and inference both apply a network this way.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

from medseg.device import autocast

Predictor = Callable[[torch.Tensor], torch.Tensor]
Reducer = Callable[[torch.Tensor], torch.Tensor] | None


def windows_per_pass(network_dim: int, training_batch: int, device: torch.device) -> int:
    """How many windows a forward pass takes during inference: two for a 3D network on the
    CPU (oneDNN's 3D convolutions ran fastest at batch 2 here: 54 ms per window of a
    Hippocampus network against 63 at 4, 82 at 8 and 95 at 1, with 1 thread as with 2 —
    bench/RESULTS.md), otherwise twice the training batch.

    Examples
    --------
    >>> windows_per_pass(3, 2, torch.device("cpu")), windows_per_pass(2, 12, torch.device("cpu"))
    (2, 24)
    """
    if network_dim == 3 and device.type == "cpu":
        return 2
    return 2 * training_batch


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
    """Start indices of windows of length ``roi`` covering ``size`` with at least ``overlap``,
    evenly spread: symmetric about the axis' centre except where a start rounds from a half
    (an odd ``size - roi`` split into an even number of steps), where mirroring the image
    moves the middle window by one voxel.

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
    predictor: Predictor,
    overlap: float = 0.5,
    mode: str = "gaussian",
    sigma_scale: float = 0.125,
    output_device: torch.device | None = None,
    reduce: Reducer = None,
) -> torch.Tensor:
    """Apply ``predictor`` to overlapping windows of ``inputs`` and blend the outputs.

    The windows run in order along the first spatial axis and are blended, in float32, in a
    buffer one window deep along it: a stretch of planes no later window touches is finished
    (divided by its summed weights), passed through ``reduce`` and stored. Memory beyond
    the result is ``K x roi[0]`` planes, whatever the volume's length.

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
    reduce
        Applied to every finished stretch ``(B, K, n, *rest)``; returns ``(B, K', n, *rest)``
        of any dtype, voxel by voxel (e.g. the most likely class, ``K' = 1``): what is kept.

    Returns
    -------
    torch.Tensor
        ``(B, K, *spatial)`` float32: the weighted mean of the window outputs at each voxel
        (with ``reduce``, its result).

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
    out_device = output_device or inputs.device
    weight = _window_weight(roi, mode, sigma_scale, out_device)
    blender = _Blender(padded.shape, roi, weight, reduce)
    starts = [window_starts(s, r, overlap) for s, r in zip(padded.shape[2:], roi)]
    # corner-major: windows advance along the first axis, every batch item at each corner
    windows = [
        (b, tuple(slice(s, s + r) for s, r in zip(corner, roi)))
        for corner in itertools.product(*starts)
        for b in range(padded.shape[0])
    ]
    for first in range(0, len(windows), sw_batch_size):
        chunk = windows[first : first + sw_batch_size]
        batch = torch.stack([padded[(b, slice(None), *region)] for b, region in chunk])
        result = predictor(batch).to(out_device, torch.float32)
        for (b, region), window_out in zip(chunk, result):
            blender.add(b, region, window_out)
    output = blender.finish()
    crop = tuple(
        slice(pads[2 * i], pads[2 * i] + size) for i, size in enumerate(reversed(spatial))
    )[::-1]
    return output[(slice(None), slice(None), *crop)]


def _window_weight(
    roi: Sequence[int], mode: str, sigma_scale: float, device: torch.device
) -> torch.Tensor:
    if mode == "gaussian":
        return gaussian_importance_map(roi, sigma_scale, device)
    if mode == "constant":
        return torch.ones(tuple(roi), device=device)
    raise ValueError(f"mode must be 'gaussian' or 'constant', got '{mode}'")


class _Blender:
    """Weighted sums of window outputs over a buffer one window deep along the first
    spatial axis, handing finished planes on to the output as the windows advance."""

    def __init__(
        self, shape: Sequence[int], roi: Sequence[int], weight: torch.Tensor, reduce: Reducer
    ) -> None:
        self.shape = tuple(shape)  # (B, C, *spatial) of the padded input
        self.depth = roi[0]
        self.weight, self.reduce = weight, reduce
        self.weight_sum = torch.zeros((self.depth, *self.shape[3:]), device=weight.device)
        self.sums: torch.Tensor | None = None  # (B, K, depth, *rest), made on first use
        self.output: torch.Tensor | None = None
        self.origin = 0  # the plane the buffer's first plane stands for

    def add(self, b: int, region: tuple[slice, ...], window_out: torch.Tensor) -> None:
        """Add one window's output ``(K, *roi)`` at ``region`` of batch item ``b``."""
        if region[0].start > self.origin:
            self._advance(region[0].start)
        if self.sums is None:
            self.sums = torch.zeros(
                (self.shape[0], len(window_out), self.depth, *self.shape[3:]),
                device=self.weight.device,
            )
        local = (slice(0, self.depth), *region[1:])
        self.sums[(b, slice(None), *local)].addcmul_(window_out, self.weight)
        if b == 0:
            self.weight_sum[local] += self.weight

    def finish(self) -> torch.Tensor:
        """Hand on the remaining planes; the whole blended (and reduced) output."""
        self._advance(self.shape[2])
        assert self.output is not None
        return self.output

    def _advance(self, until: int) -> None:
        """Finish the planes before ``until`` and move the buffer to start there."""
        assert self.sums is not None
        n = until - self.origin
        done = self.sums[:, :, :n] / self.weight_sum[:n]
        kept = self.reduce(done) if self.reduce is not None else done
        if self.output is None:
            self.output = torch.empty(
                (*kept.shape[:2], *self.shape[2:]), dtype=kept.dtype, device=kept.device
            )
        self.output[:, :, self.origin : until] = kept
        for buffer in (self.sums, self.weight_sum[None, None]):
            rest = self.depth - n
            if rest > 0:
                buffer[:, :, :rest] = buffer[:, :, n:].clone()
            buffer[:, :, max(rest, 0) :] = 0
        self.origin = until


@torch.no_grad()
def predict_volume(
    network: Predictor | Sequence[Predictor],
    image: torch.Tensor,
    patch_size: Sequence[int],
    sw_batch_size: int = 4,
    slice_axis: int | None = None,
    overlap: float = 0.5,
    activation: str = "softmax",
    *,
    mirror_axes: Sequence[Sequence[int]] = ((),),
    reduce: Reducer = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Class probabilities ``(K, *spatial)`` for one normalised image ``(C, *spatial)``: the
    softmax of the logits, or with ``activation="sigmoid"`` each output's own probability
    (region-based networks).

    ``network`` may be a list (an ensemble) and ``mirror_axes`` lists the image axes to
    mirror for test-time augmentation (``()`` is the image as it is): every window's
    probabilities are then the mean over the networks and mirrored copies, so the ensemble
    costs one blended volume, not one per member. ``reduce`` as for
    `sliding_window_inference`, given ``(K, n, *rest)`` stretches (here channel-first).
    ``dtype``: the networks run under autocast in it (`medseg.device.resolve_precision`);
    probabilities and their blending stay float32.

    With ``slice_axis`` set, a 2D network runs on every slice along that axis (the slices
    become the batch) and the result is put back in the image's axis order.
    """
    if activation not in ("softmax", "sigmoid"):
        raise ValueError(f"activation must be softmax or sigmoid, got {activation!r}")
    networks = list(network) if isinstance(network, Sequence) else [network]
    axes = [a for a in range(image.ndim - 1) if a != slice_axis]  # image axes the windows see
    mirrors = [[2 + axes.index(a) for a in mirrored] for mirrored in mirror_axes]

    def predictor(windows: torch.Tensor) -> torch.Tensor:
        total = None
        for net in networks:
            for dims in mirrors:
                with autocast(windows.device, dtype):
                    logits = net(windows.flip(dims) if dims else windows).float()
                probs = torch.sigmoid(logits) if activation == "sigmoid" else logits.softmax(1)
                probs = probs.flip(dims) if dims else probs
                total = probs if total is None else total.add_(probs)
        assert total is not None
        count = len(networks) * len(mirrors)
        return total if count == 1 else total.div_(count)

    if slice_axis is None:
        reduce_batch = None if reduce is None else lambda p: reduce(p[0])[None]
        return sliding_window_inference(
            image[None], patch_size, sw_batch_size, predictor, overlap, reduce=reduce_batch
        )[0]
    slices = image.movedim(1 + slice_axis, 0)  # (S, C, H, W)
    reduce_slices = None if reduce is None else lambda p: reduce(p.movedim(0, 1)).movedim(1, 0)
    probs = sliding_window_inference(
        slices, patch_size, sw_batch_size, predictor, overlap, reduce=reduce_slices
    )
    return probs.movedim(0, 1 + slice_axis)  # (K, ..., S, ...)
