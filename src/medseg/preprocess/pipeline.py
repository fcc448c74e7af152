"""A case through the plan's preprocessing and a prediction back to the case's own grid.

Forward: reorient to the closest canonical axis order, crop to the non-zero region, filter,
normalise, resample to the target spacing. Backward (for predictions): resample the class
probabilities to the cropped grid, put the crop back into the full image, undo the
reorientation, so that the label map has exactly the input's shape and affine.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field

from medseg.errors import ConfigError, located
from medseg.io import Image
from medseg.io.limits import MAX_VOXELS_VARIABLE, max_voxels
from medseg.preprocess.filters import Equalization, denoise_gaussian, equalize
from medseg.preprocess.geometry import (
    canonical_orientation,
    crop,
    nonzero_box,
    reorient,
    resample,
    resample_labels,
    resampled_affine,
    resampled_shape,
    uncrop,
    undo_reorient,
)
from medseg.preprocess.normalize import ChannelNormalization, normalize_channel

PREPROCESSING_VERSION = 1
#: A case whose spacing is this many times finer or coarser than the plan's target on an axis
#: is refused: it is not the kind of image the model was planned for (or its header is wrong).
MAX_RESAMPLING_FACTOR = 25.0


class Preprocessing(BaseModel):
    """The preprocessing part of a plan: the same for training and inference."""

    version: int = PREPROCESSING_VERSION
    # canonical axis order
    target_spacing: list[Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False)]] = Field(
        min_length=2, max_length=3
    )
    normalization: list[ChannelNormalization]  # one per channel
    crop_to_nonzero: bool = True
    # resampled on its own, nearest neighbour (a strongly anisotropic axis), if any
    separate_axis: int | None = None
    image_order: int = Field(default=3, ge=0, le=5)  # spline order for images
    label_interpolation: Literal["linear_one_hot", "nearest"] = "linear_one_hot"
    denoise_sigma_mm: float | None = Field(default=None, gt=0)
    equalization: Equalization = "none"


class CaseGeometry(BaseModel):
    """Where a preprocessed case came from: enough to map a prediction back exactly.
    Saved next to each cached case (``{case}.json``)."""

    original_shape: list[int]
    original_affine: list[list[float]]
    orientation: list[list[float]]  # nibabel ornt applied to reach canonical order
    crop_box: list[list[int]]  # (start, stop) per axis in the reoriented array
    cropped_shape: list[int]
    shape: list[int]  # after resampling: the grid the network sees
    affine: list[list[float]]  # of that grid

    @property
    def grid_affine(self) -> np.ndarray:
        """The preprocessed grid's affine as an array."""
        return np.asarray(self.affine, np.float64)


def _spacing(affine: np.ndarray, ndim: int) -> list[float]:
    return [float(s) for s in np.linalg.norm(affine[:3, :ndim], axis=0)]


def _geometry(
    image: Image, prep: Preprocessing, source: str | Path
) -> tuple[np.ndarray, np.ndarray, CaseGeometry]:
    """Reorient and crop; return the cropped array, its affine and the geometry record
    (its resampled shape and affine filled in)."""
    ornt = canonical_orientation(image.affine, image.ndim)
    array, affine = reorient(image.array, image.affine, ornt)
    box = nonzero_box(array) if prep.crop_to_nonzero else tuple((0, n) for n in array.shape[1:])
    array, affine = crop(array, affine, box)
    cropped = list(array.shape[1:])
    spacing = _spacing(affine, image.ndim)
    if len(prep.target_spacing) != image.ndim:
        raise ValueError(
            f"the plan's target spacing is {len(prep.target_spacing)}D, the image {image.ndim}D"
        )
    shape = list(resampled_shape(cropped, spacing, prep.target_spacing))
    _check_resampling(source, spacing, prep.target_spacing, image.channels * math.prod(shape))
    geometry = CaseGeometry(
        original_shape=list(image.spatial_shape),
        original_affine=image.affine.tolist(),
        orientation=ornt.tolist(),
        crop_box=[list(b) for b in box],
        cropped_shape=cropped,
        shape=shape,
        affine=resampled_affine(affine, cropped, shape).tolist(),
    )
    return array, affine, geometry


def _check_resampling(
    source: str | Path, spacing: list[float], target: list[float], voxels: int
) -> None:
    """Refuse, before resampling, a case far from the plan's spacing or too large after it."""
    rounded = [round(s, 4) for s in spacing]
    factor = max(max(s / t, t / s) for s, t in zip(spacing, target))
    if factor > MAX_RESAMPLING_FACTOR:
        raise ConfigError(
            located(
                source,
                f"spacing {rounded} mm is {factor:.0f} times the plan's target {target} mm "
                f"on one axis (at most {MAX_RESAMPLING_FACTOR:.0f}): check the image's header, "
                "or plan for such images (preprocessing.target_spacing)",
            )
        )
    if voxels > max_voxels():
        raise ConfigError(
            located(
                source,
                f"resampling to the plan's target spacing {target} mm gives {voxels:.3g} "
                f"voxels, more than the limit of {max_voxels():.3g}: crop the image, choose a "
                f"coarser preprocessing.target_spacing or raise {MAX_VOXELS_VARIABLE}",
            )
        )


def preprocess_image(
    image: Image, prep: Preprocessing, source: str | Path = "image"
) -> tuple[np.ndarray, CaseGeometry]:
    """The network input of an image (float32 ``(C, *shape)``) and its geometry record.

    ``source`` names the image in errors: a case too far from the plan's spacing, or too
    large once resampled (`medseg.io.limits`), raises `ConfigError` before any resampling.
    """
    if image.channels != len(prep.normalization):
        raise ValueError(
            f"{image.channels} channels, the plan normalises {len(prep.normalization)}"
        )
    array, affine, geometry = _geometry(image, prep, source)
    spacing = _spacing(affine, image.ndim)
    channels = []
    for channel, how in zip(array, prep.normalization):
        channel = channel.astype(np.float32, copy=False)
        if prep.denoise_sigma_mm:
            channel = denoise_gaussian(channel, prep.denoise_sigma_mm, spacing)
        channel = equalize(channel, prep.equalization)
        channels.append(normalize_channel(channel, how))
    normalised = np.stack(channels)
    out = resample(normalised, geometry.shape, prep.image_order, prep.separate_axis)
    return out.astype(np.float32, copy=False), geometry


def preprocess_label(
    label: np.ndarray, geometry: CaseGeometry, prep: Preprocessing, values: list[int]
) -> np.ndarray:
    """A label map ``(X, Y[, Z])`` on the preprocessed grid of its image (``values``: the
    label values that may occur; no other value is ever created)."""
    ornt = np.asarray(geometry.orientation)
    (reoriented,), _ = reorient(label[None], np.eye(4), ornt)
    index = tuple(slice(a, b) for a, b in geometry.crop_box)
    cropped = reoriented[index]
    if prep.label_interpolation == "nearest":
        return resample(cropped[None], geometry.shape, 0)[0]
    return resample_labels(cropped, geometry.shape, values, prep.separate_axis)


def _reoriented_shape(geometry: CaseGeometry) -> list[int]:
    """The original image's shape in canonical axis order (input axis i became ornt[i, 0])."""
    shape = list(geometry.original_shape)
    if len(shape) == 3:
        for axis, (target, _) in enumerate(geometry.orientation):
            shape[int(target)] = geometry.original_shape[axis]
    return shape


def restore_channel(channel: np.ndarray, geometry: CaseGeometry, fill: float) -> np.ndarray:
    """One channel ``(*shape)`` on the preprocessed grid mapped back onto the original image
    grid: linear resampling to the cropped grid, ``fill`` outside the crop, original axis
    order."""
    on_crop = resample(channel[None].astype(np.float32, copy=False), geometry.cropped_shape, 1)
    full = uncrop(on_crop, geometry.crop_box, _reoriented_shape(geometry), np.float32([fill]))
    return _original_order(full, geometry)


def _original_order(array: np.ndarray, geometry: CaseGeometry) -> np.ndarray:
    ornt = np.asarray(geometry.orientation)
    return np.ascontiguousarray(undo_reorient(array, ornt, geometry.original_shape)[0])


def restore_labels(labels: np.ndarray, geometry: CaseGeometry, fill: int) -> np.ndarray:
    """A label map on the preprocessed grid put back onto the original image grid, ``fill``
    outside the crop: only for a grid that was not resampled (`was_resampled`), where no
    interpolation is needed and the labels are exactly those of the probabilities."""
    if was_resampled(geometry):
        raise ValueError("the case was resampled: restore its probabilities, not its labels")
    full = uncrop(labels[None], geometry.crop_box, _reoriented_shape(geometry), [fill])
    return _original_order(full, geometry)


def was_resampled(geometry: CaseGeometry) -> bool:
    """Whether the network's grid differs from the cropped image's."""
    return list(geometry.shape) != list(geometry.cropped_shape)


def _fill(channel: int, background: bool) -> float:
    """Outside the crop: background (class 0) has probability 1, every other output 0."""
    return 1.0 if channel == 0 and background else 0.0


def restore_probabilities(
    probabilities: np.ndarray, geometry: CaseGeometry, background: bool = True
) -> np.ndarray:
    """Class probabilities ``(K, *shape)`` on the preprocessed grid mapped back onto the
    original image grid ``(K, *original_shape)`` (`restore_channel`, channel by channel into
    one array): background (class 0; without ``background``, probability 0 for every
    output, as for regions) outside the crop."""
    out = np.empty((len(probabilities), *geometry.original_shape), np.float32)
    for k, channel in enumerate(probabilities):
        out[k] = restore_channel(channel, geometry, _fill(k, background))
    return out


def restore_classes(probabilities: np.ndarray, geometry: CaseGeometry) -> np.ndarray:
    """``restore_probabilities(probabilities, geometry).argmax(0)`` (uint8 or uint16 class
    indices; the first class on ties), one class at a time: two channels of the original
    image's size in memory instead of K."""
    best = restore_channel(probabilities[0], geometry, _fill(0, True))
    dtype = np.uint8 if len(probabilities) <= 256 else np.uint16
    classes = np.zeros(best.shape, dtype)
    for k in range(1, len(probabilities)):
        channel = restore_channel(probabilities[k], geometry, _fill(k, True))
        better = channel > best
        classes[better] = k
        np.maximum(best, channel, out=best)
    return classes
