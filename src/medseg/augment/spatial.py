"""The spatial step: rotation, scaling, translation, elastic deformation, mirroring and the
crop to the output size, drawn per sample and applied in one resampling per batch.

Geometry: output voxel ``q`` samples input position
``p = centre_in + t + D^-1 R Z M D (q + u(q) - centre_out)``, where ``D`` is the voxel
spacing (rotation happens in millimetres), ``R`` a rotation, ``Z`` the zoom factors (above 1
the patch covers more input), ``M`` the mirror signs, ``u`` the elastic displacement and
``t`` the translation, all in voxels. ``centre_in`` is the centre of the central
``output_size`` region of the input, so with nothing drawn the output is that region.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medseg.augment.resample import resample_direct, resample_separable, separable_quality
from medseg.augment.settings import AugmentationSettings, Parameter, bounds, draw
from medseg.augment.workspace import Workspace

# Below this separable_quality the two-pass 3D resampling gives way to grid_sample in 3D.
_MIN_SEPARABLE_QUALITY = 0.5


def thick_axis(spacing: Sequence[float] | None, threshold: float = 3.0) -> int | None:
    """The axis whose spacing is more than ``threshold`` times every other axis's, if any
    (nnU-Net's rule for treating 3D data as a stack of 2D slices); None for 2D data.

    Examples
    --------
    >>> thick_axis((0.8, 0.8, 5.0)), thick_axis((1.0, 1.0, 2.5)), thick_axis(None)
    (2, None, None)
    """
    if spacing is None or len(spacing) < 3:
        return None
    axis = int(np.argmax(spacing))
    others = [s for i, s in enumerate(spacing) if i != axis]
    return axis if spacing[axis] > threshold * max(others) else None


def rotation_matrices(angles: torch.Tensor, dim: int, about: int | None = None) -> torch.Tensor:
    """Rotation matrices ``(B, dim, dim)`` from angles in radians.

    2D: ``angles`` is ``(B,)``. 3D: ``(B, 3)``, turning about axes 0, 1 and 2 in turn, or
    ``(B,)`` turning about axis ``about`` only.

    Examples
    --------
    >>> R = rotation_matrices(torch.tensor([math.pi / 2], dtype=torch.float64), 2)
    >>> R.round().tolist()
    [[[0.0, -1.0], [1.0, 0.0]]]
    """
    batch = angles.shape[0]
    if dim == 2:
        return _plane_rotation(angles, 2, 0, 1)
    if about is not None:
        plane = [i for i in range(3) if i != about]
        return _plane_rotation(angles, 3, plane[0], plane[1])
    result = torch.eye(3, dtype=angles.dtype).expand(batch, 3, 3)
    for axis in range(3):
        plane = [i for i in range(3) if i != axis]
        result = result @ _plane_rotation(angles[:, axis], 3, plane[0], plane[1])
    return result


def _plane_rotation(angles: torch.Tensor, dim: int, i: int, j: int) -> torch.Tensor:
    matrix = torch.eye(dim, dtype=angles.dtype).repeat(angles.shape[0], 1, 1)
    cos, sin = torch.cos(angles), torch.sin(angles)
    matrix[:, i, i], matrix[:, i, j], matrix[:, j, i], matrix[:, j, j] = cos, -sin, sin, cos
    return matrix


def _largest(parameter: Parameter) -> float:
    return max(abs(v) for v in bounds(parameter))


def padded_patch_size(
    output_size: Sequence[int],
    settings: AugmentationSettings,
    spacing: Sequence[float] | None = None,
) -> list[int]:
    """How large a patch the sampler should draw so that rotation, zoom-out, translation and
    elastic deformation seldom reach past it: the box that holds the output patch turned by
    any allowed angle and zoomed out by the largest factor, enlarged by the largest shift,
    capped at ``settings.max_patch_enlargement`` times the output size per axis (nnU-Net
    draws such a larger patch too). Whatever still falls outside reads as 0.

    Examples
    --------
    >>> padded_patch_size([64, 64, 20], AugmentationSettings(), spacing=(1.0, 1.0, 4.0))
    [89, 89, 20]
    >>> padded_patch_size([64, 64], AugmentationSettings(enabled=False))
    [64, 64]
    """
    size = np.asarray(output_size, dtype=np.float64)
    dim = len(size)
    if not settings.enabled:
        return [int(s) for s in output_size]
    thick = thick_axis(spacing, settings.anisotropy_threshold) if dim == 3 else None
    spacing_ = np.ones(dim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    extent = size - 1
    if settings.rotation.probability > 0:
        matrices = _extreme_rotations(settings, dim, thick)
        # D^-1 R D in voxels; the reach along axis i of the turned box.
        voxel = matrices * spacing_[None, None, :] / spacing_[None, :, None]
        extent = np.max(np.abs(voxel) @ (size - 1), axis=0)
    if settings.scaling.probability > 0:
        zoom = max(1.0, bounds(settings.scaling.factor)[1])
        extent = extent * np.where(np.arange(dim) == thick, 1.0, zoom)
    if settings.translation.probability > 0:
        extent = extent + 2 * _largest(settings.translation.voxels)
    if settings.elastic.probability > 0:
        extent = extent + np.where(
            np.arange(dim) == thick, 0, 2 * _largest(settings.elastic.magnitude)
        )
    cap = np.floor(settings.max_patch_enlargement * size + 1e-9)
    padded = np.maximum(size, np.minimum(np.ceil(extent + 1 - 1e-6), cap))
    return [int(p) for p in padded]


def _extreme_rotations(settings: AugmentationSettings, dim: int, thick: int | None) -> np.ndarray:
    """Rotation matrices over a grid of allowed angles that includes the range ends and every
    multiple of 45 degrees in it (where a box reaches furthest)."""

    def candidates(parameter: Parameter) -> list[float]:
        low, high = bounds(parameter)
        values = set(np.linspace(low, high, 7).tolist())
        values.update(a for a in range(-360, 361, 45) if low <= a <= high)
        return sorted(math.radians(v) for v in values)

    if dim == 2 or thick is not None:
        angles = torch.tensor(candidates(settings.rotation.in_plane_angle_degrees))
        return rotation_matrices(angles.double(), dim, about=thick).numpy()
    axis_angles = candidates(settings.rotation.angle_degrees)
    grid = torch.tensor(list(itertools.product(axis_angles, repeat=3)), dtype=torch.float64)
    return rotation_matrices(grid, 3).numpy()


class SpatialTransform:
    """Rotation, scaling, translation, elastic deformation, mirroring and the central crop
    to the output size, in one resampling of the samples that need one (a slice, flipped
    where mirrored, for the others).

    Parameters
    ----------
    settings
        The augmentation settings (rotation, scaling, translation, elastic, mirror).
    dim
        2 or 3 spatial axes.
    spacing
        Voxel spacing of the patches (None: isotropic).

    Examples
    --------
    >>> spatial = SpatialTransform(AugmentationSettings(), dim=2)
    >>> image, label = torch.rand(4, 1, 40, 40), torch.randint(0, 3, (4, 40, 40))
    >>> out, lab = spatial(image, label, (32, 32), torch.Generator().manual_seed(0))
    >>> tuple(out.shape), tuple(lab.shape), lab.dtype
    ((4, 1, 32, 32), (4, 32, 32), torch.int64)
    """

    def __init__(
        self, settings: AugmentationSettings, dim: int, spacing: Sequence[float] | None = None
    ) -> None:
        if dim not in (2, 3):
            raise ValueError(f"augmentation works on 2D or 3D patches, not {dim}D")
        if spacing is not None and len(spacing) != dim:
            raise ValueError(f"spacing {list(spacing)} does not have {dim} axes")
        self.settings = settings
        self.dim = dim
        self.spacing = torch.ones(dim, dtype=torch.float64)
        if spacing is not None:
            self.spacing = torch.tensor([float(s) for s in spacing], dtype=torch.float64)
        self.thick = thick_axis(spacing, settings.anisotropy_threshold) if dim == 3 else None
        axes = settings.mirror.axes
        allowed = range(dim) if axes is None else axes
        if any(not 0 <= a < dim for a in allowed):
            raise ValueError(f"mirror axes {axes} are not all spatial axes of {dim}D patches")
        self.mirror_allowed = torch.tensor([a in allowed for a in range(dim)])
        self.workspace = Workspace()

    def draw(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Per-sample parameters: ``matrix`` ``(B, d, d)`` (the ``D^-1 R Z M D`` above),
        ``shift`` ``(B, d)`` voxels, ``mirror`` ``(B, d)`` bool, ``elastic`` ``(B,)`` bool
        with ``magnitude`` and ``spacing`` ``(B,)``, and ``resample`` ``(B,)`` bool: whether
        anything but a crop and mirroring is needed."""
        s, dim = self.settings, self.dim
        rotate = torch.rand(batch, generator=generator) < s.rotation.probability
        if dim == 2 or self.thick is not None:
            angles = draw(s.rotation.in_plane_angle_degrees, (batch,), generator)
            angles = torch.deg2rad(angles) * rotate
            rotation = rotation_matrices(angles, dim, about=self.thick)
        else:
            angles = torch.deg2rad(draw(s.rotation.angle_degrees, (batch, 3), generator))
            rotation = rotation_matrices(angles * rotate[:, None], 3)

        zoom_on = torch.rand(batch, generator=generator) < s.scaling.probability
        zoom = draw(s.scaling.factor, (batch, dim if s.scaling.per_axis else 1), generator)
        zoom = torch.where(zoom_on[:, None], zoom, 1.0).expand(batch, dim).clone()
        if self.thick is not None:
            zoom[:, self.thick] = 1.0

        shift_on = torch.rand(batch, generator=generator) < s.translation.probability
        shift = draw(s.translation.voxels, (batch, dim), generator) * shift_on[:, None]

        elastic = torch.rand(batch, generator=generator) < s.elastic.probability
        magnitude = draw(s.elastic.magnitude, (batch,), generator)
        control = draw(s.elastic.spacing, (batch,), generator).clamp_min(1.0)

        mirror = torch.rand(batch, dim, generator=generator) < s.mirror.probability
        mirror &= self.mirror_allowed
        signs = torch.where(mirror, -1.0, 1.0).to(torch.float64)

        D = self.spacing
        matrix = rotation * (zoom * signs)[:, None, :] * D[None, None, :] / D[None, :, None]
        resample = rotate | zoom_on | (shift != 0).any(1) | elastic
        return {"matrix": matrix, "shift": shift, "mirror": mirror, "elastic": elastic,
                "magnitude": magnitude, "spacing": control, "resample": resample}  # fmt: skip

    def __call__(
        self,
        image: torch.Tensor,
        label: torch.Tensor,
        output_size: Sequence[int],
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented ``(B, C, *output_size)`` images and ``(B, *output_size)`` int64 labels
        from ``(B, C, *S)`` images and ``(B, *S)`` labels, ``S >= output_size``."""
        batch, dim = image.shape[0], self.dim
        in_size, out_size = list(image.shape[2:]), [int(o) for o in output_size]
        p = self.draw(batch, generator)
        start = torch.tensor([(i - o) // 2 for i, o in zip(in_size, out_size)])
        centre_out = (torch.tensor(out_size, dtype=torch.float64) - 1) / 2
        offset = (
            start + centre_out + p["shift"] - torch.einsum("bij,j->bi", p["matrix"], centre_out)
        )

        # Which samples go which way: a flipped slice, two 2D passes, or grid_sample.
        elastic = p["resample"] & p["elastic"]
        affine_only = p["resample"] & ~elastic
        direct, separable = elastic.clone(), torch.zeros_like(elastic)
        axis = self._sweep_axis(p["matrix"][affine_only])
        # The two-pass path exists for the CPU, where 3D grid_sample is slow; elsewhere one
        # trilinear grid_sample is both fast and exact.
        if dim == 2 or min(in_size) < 2 or axis is None or image.device.type != "cpu":
            direct |= affine_only
        else:
            good = separable_quality(p["matrix"], axis) >= _MIN_SEPARABLE_QUALITY
            direct |= affine_only & ~good
            separable = affine_only & good
        # Labels come back from the resampling as float class numbers; converting them once,
        # into the output, saves a fresh int64 copy per group.
        results = []
        groups = [(separable, resample_separable), (direct, resample_direct)]
        for mask, resample in groups:
            chosen = mask.nonzero()[:, 0]
            if len(chosen) == 0:
                continue
            part_image, part_label = self._take(image, label, chosen)
            if resample is resample_separable:
                extra = {"axis": axis, "workspace": self.workspace}
            else:
                field = self._displacement(p, chosen, out_size, generator, image.device)
                extra = {"displacement": field}
            matrix, shift = p["matrix"][chosen], offset[chosen]
            results.append((chosen, resample(part_image, part_label, matrix, shift, out_size,
                                             label_dtype=torch.float32, **extra)))  # fmt: skip
        if len(results) == 1 and len(results[0][0]) == batch:
            out, float_labels = results[0][1]
            return out, float_labels.to(torch.int64)

        out = image.new_empty(batch, image.shape[1], *out_size)
        labels = torch.empty(batch, *out_size, dtype=torch.int64, device=label.device)
        for chosen, (part, part_labels) in results:
            for n, b in enumerate(chosen.tolist()):
                out[b] = part[n]
                labels[b] = part_labels[n]
        crop = tuple(slice(int(a), int(a) + o) for a, o in zip(start, out_size))
        for b in (~p["resample"]).nonzero()[:, 0].tolist():
            flips = [a for a in range(dim) if p["mirror"][b, a]]
            region, region_label = image[b][(slice(None), *crop)], label[b][crop]
            if flips:
                region = region.flip([1 + a for a in flips])
                region_label = region_label.flip(flips)
            out[b] = region
            labels[b] = region_label
        return out, labels

    def _sweep_axis(self, matrices: torch.Tensor) -> int | None:
        """The input axis `resample_separable` sweeps first: the coarse axis of anisotropic
        data; else axis 0 if it suits every sample (no transposed copy of the output), or the
        axis whose worst sample suits it best."""
        if self.dim != 3:
            return None
        if self.thick is not None:
            return self.thick
        if len(matrices) == 0:
            return 0
        worst = [float(separable_quality(matrices, a).min()) for a in range(3)]
        return 0 if worst[0] >= _MIN_SEPARABLE_QUALITY else int(np.argmax(worst))

    @staticmethod
    def _take(
        image: torch.Tensor, label: torch.Tensor, chosen: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if len(chosen) == image.shape[0]:
            return image, label
        index = chosen.to(image.device)
        return image.index_select(0, index), label.index_select(0, index)

    def _displacement(
        self,
        p: dict[str, torch.Tensor],
        chosen: torch.Tensor,
        out_size: list[int],
        generator: torch.Generator,
        device: torch.device,
    ) -> torch.Tensor | None:
        """Elastic displacements ``(N, d, *out_size)`` in voxels for the chosen samples
        (zero for those without elastic deformation), or None if none has one."""
        if not bool(p["elastic"][chosen].any()):
            return None
        dim = self.dim
        field = torch.zeros(len(chosen), dim, *out_size, device=device)
        mode = "bilinear" if dim == 2 else "trilinear"
        for n, b in enumerate(chosen.tolist()):
            if not p["elastic"][b]:
                continue
            step = float(p["spacing"][b])
            coarse_size = [max(2, math.ceil((o - 1) / step) + 1) for o in out_size]
            coarse = torch.randn(1, dim, *coarse_size, generator=generator)
            if self.thick is not None:
                coarse[:, self.thick] = 0
            fine = F.interpolate(coarse.to(device), size=out_size, mode=mode, align_corners=True)
            largest = fine.abs().amax().clamp_min(1e-12)
            field[n] = fine[0] * (float(p["magnitude"][b]) / largest)
        return field
