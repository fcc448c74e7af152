"""A run configuration from the training images' shapes and spacings alone (no timing): the
patch that fits a voxel budget, the network layout that suits it and a batch size. The planner
(`planner.make_plan`) starts from it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import ValidationError

from medseg.errors import ConfigError, first_invalid_field
from medseg.nn import stage_layout
from medseg.runs import DEFAULT_LEARNING_RATE, Plan


def choose_patch_size(
    median_shape: Sequence[int], spacing: Sequence[float], max_voxels: int
) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """Patch size, strides and kernel sizes for a network on images of ``median_shape``.

    The patch starts as the median shape and shrinks along its largest physical extent until
    it holds at most ``max_voxels``; each axis is then rounded up to a multiple of the total
    downsampling the network applies along it.

    Examples
    --------
    >>> patch, strides, _ = choose_patch_size((512, 512), (1.0, 1.0), 256 * 256)
    >>> patch, len(strides)
    ([256, 256], 6)
    """
    patch = [int(n) for n in median_shape]
    while int(np.prod(patch)) > max_voxels:
        # Shrink every axis whose physical extent is (nearly) the largest, together, so that
        # square images keep square patches.
        extents = [p * s for p, s in zip(patch, spacing)]
        before = list(patch)
        for axis, extent in enumerate(extents):
            if extent >= 0.95 * max(extents) and patch[axis] > 4:
                patch[axis] = max(4, int(patch[axis] * 0.9))
        if patch == before:
            break
    strides, kernels = stage_layout(patch, spacing, max_stages=6)
    total = np.prod(np.asarray(strides), axis=0)
    patch = [int(np.ceil(p / t) * t) for p, t in zip(patch, total)]
    return patch, strides, kernels


def auto_config(
    *,
    shapes: Sequence[Sequence[int]],
    spacings: Sequence[Sequence[float]],
    in_channels: int,
    label_values: Sequence[int],
    label_names: Sequence[str],
    channel_names: Sequence[str],
    file_ending: str,
    dim: int | None = None,
    model: str = "unet",
    device_type: str = "cpu",
    **overrides: object,
) -> Plan:
    """Derive a run configuration from the training images' shapes and spacings.

    ``dim`` is the network's dimensionality (default: the data's). A 2D network on 3D data
    slices along the coarsest axis. ``overrides`` set any `Plan` field directly.
    """
    data_dim = len(shapes[0])
    dim = dim or data_dim
    if dim == 3 and data_dim == 2:
        raise ConfigError("--dim 3d: the dataset is 2D; use --dim 2d")
    median_shape = [int(v) for v in np.median(np.asarray(shapes), axis=0)]
    median_spacing = [float(v) for v in np.median(np.asarray(spacings), axis=0)]
    slice_axis = None
    shape, spacing = median_shape, median_spacing
    if dim == 2 and data_dim == 3:
        slice_axis = int(np.argmax(median_spacing))
        shape = [s for a, s in enumerate(median_shape) if a != slice_axis]
        spacing = [s for a, s in enumerate(median_spacing) if a != slice_axis]
    gpu = device_type == "cuda"
    if dim == 3:
        max_voxels, batch_size, features_cap = (128**3 if gpu else 64 * 64 * 16), 2, 320
    else:
        max_voxels, batch_size, features_cap = (512**2 if gpu else 256 * 256), 8, 512
        if not gpu:
            max_voxels = 192 * 192
    patch, strides, kernels = choose_patch_size(shape, spacing, max_voxels)
    if overrides.get("patch_size"):
        patch = [int(p) for p in overrides["patch_size"]]  # type: ignore[union-attr]
        if len(patch) != dim:
            raise ConfigError(f"--patch-size needs {dim} numbers, got {len(patch)}")
        strides, kernels = stage_layout(patch, spacing, max_stages=6)
    if model == "fcn" and len(strides) < 4:
        raise ConfigError(f"patch {patch} is too small for an FCN (needs 3 pooling stages)")
    base = 32 if gpu else 16
    features = [min(base * 2**i, features_cap) for i in range(len(strides))]
    settings: dict[str, object] = {
        "in_channels": in_channels,
        "label_values": list(label_values),
        "label_names": list(label_names),
        "channel_names": list(channel_names),
        "file_ending": file_ending,
        "data_dim": data_dim,
        "median_spacing": median_spacing,
        "median_shape": median_shape,
        "model": model,
        "dim": dim,
        "slice_axis": slice_axis,
        "features": features,
        "strides": strides,
        "kernel_sizes": kernels,
        "patch_size": patch,
        "batch_size": batch_size,
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings.setdefault(
        "learning_rate", DEFAULT_LEARNING_RATE[str(settings.get("optimizer", "sgd"))]
    )
    try:
        return Plan.model_validate(settings)
    except ValidationError as exc:
        problem = first_invalid_field(exc, "plan")
        raise ConfigError(f"invalid training settings: {problem}") from None
