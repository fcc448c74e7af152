"""The training-time augmentation pipeline: spatial step, then intensity transforms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from medseg.augment.intensity import (
    Brightness,
    Contrast,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LowResolution,
)
from medseg.augment.settings import AugmentationSettings
from medseg.augment.spatial import SpatialTransform

_STATE_VERSION = 1


class Augmenter:
    """Augments batches of patches and their labels together, on ``device``.

    Every random number comes from one generator seeded with ``seed``: the same seed and the
    same inputs give the same outputs, and `state_dict` / `load_state_dict` carry the
    sequence across a resumed run.

    Parameters
    ----------
    settings
        What to apply (`AugmentationSettings`); with ``enabled`` off only the crop is done.
    dim
        2 for ``(B, C, H, W)`` batches, 3 for ``(B, C, D, H, W)``.
    seed
        Seed of the generator.
    device
        Where the work happens (default: the CPU); inputs are moved there.
    spacing
        Voxel spacing of the patches, for rotation in millimetres and the anisotropy rule
        (None: isotropic).

    Examples
    --------
    >>> augment = Augmenter(AugmentationSettings(), dim=3, seed=0, spacing=(1.0, 1.0, 3.0))
    >>> image, target = torch.rand(2, 1, 40, 40, 16), torch.randint(0, 2, (2, 40, 40, 16))
    >>> image, target = augment(image, target, output_size=(32, 32, 12))
    >>> tuple(image.shape), tuple(target.shape), target.dtype
    ((2, 1, 32, 32, 12), (2, 32, 32, 12), torch.int64)
    """

    def __init__(
        self,
        settings: AugmentationSettings,
        dim: int,
        seed: int = 0,
        device: torch.device | str | None = None,
        spacing: Sequence[float] | None = None,
    ) -> None:
        self.settings = settings
        self.dim = dim
        self.device = torch.device("cpu" if device is None else device)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.spatial = SpatialTransform(settings, dim, spacing)
        skip = self.spatial.thick
        s = settings
        self.intensity = [
            GaussianNoise(s.noise),
            GaussianBlur(s.blur, skip_axis=skip),
            Brightness(s.brightness),
            Contrast(s.contrast),
            LowResolution(s.low_resolution, skip_axis=skip),
            Gamma(s.inverted_gamma),
            Gamma(s.gamma),
        ]

    def __call__(
        self,
        image: torch.Tensor,
        target: torch.Tensor,
        output_size: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented ``(B, C, *output_size)`` float32 images and ``(B, *output_size)`` int64
        labels from ``image`` ``(B, C, *S)`` and ``target`` ``(B, *S)`` class indices, where
        ``S`` may be larger than ``output_size``: the output is the (transformed) central
        region. The inputs are not modified."""
        in_size = tuple(image.shape[2:])
        if image.ndim != self.dim + 2:
            raise ValueError(
                f"expected (B, C, *spatial) {self.dim}D images, got {tuple(image.shape)}"
            )
        if tuple(target.shape) != (image.shape[0], *in_size):
            raise ValueError(
                f"target shape {tuple(target.shape)} does not match image {tuple(image.shape)}"
            )
        out_size = in_size if output_size is None else tuple(int(o) for o in output_size)
        if len(out_size) != self.dim or any(o < 1 or o > i for o, i in zip(out_size, in_size)):
            raise ValueError(
                f"output size {list(out_size)} does not fit in patches of {list(in_size)}"
            )
        image = image.to(self.device, torch.float32)
        target = target.to(self.device, torch.int64)
        with torch.no_grad():
            if not self.settings.enabled:
                start = [(i - o) // 2 for i, o in zip(in_size, out_size)]
                crop = tuple(slice(a, a + o) for a, o in zip(start, out_size))
                return image[(..., *crop)].clone(), target[(slice(None), *crop)].clone()
            image, target = self.spatial(image, target, out_size, self.generator)
            for transform in self.intensity:
                if transform.settings.probability > 0:
                    image = transform(image, self.generator)
        return image, target

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (tensors and ints only: loadable with
        ``torch.load(weights_only=True)``).

        Examples
        --------
        >>> augment = Augmenter(AugmentationSettings(), dim=2, seed=1)
        >>> sorted(augment.state_dict())
        ['generator', 'version']
        """
        return {"version": _STATE_VERSION, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the random sequence saved by `state_dict`."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unknown augmenter state version {state.get('version')!r}")
        self.generator.set_state(state["generator"])
