"""Scratch tensors kept from one batch to the next.

A fresh 16 MB tensor on a Linux CPU is a fresh ``mmap``: the kernel zeroes every page on its
first touch, and for 128^3 batches that cost as much as the arithmetic (measured: 55,000 page
faults and 40 % of the spatial step's time per batch of two). Scratch space for grids and
staging buffers is therefore allocated once and reused while shapes stay the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class Workspace:
    """Named scratch tensors, reallocated only when shape, dtype or device change.

    Examples
    --------
    >>> space = Workspace()
    >>> a, fresh = space.get("grid", (2, 3), torch.float32, torch.device("cpu"))
    >>> b, again = space.get("grid", (2, 3), torch.float32, torch.device("cpu"))
    >>> a is b, fresh, again
    (True, True, False)
    """

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}
        self._tags: dict[str, object] = {}

    def get(
        self,
        name: str,
        shape: Sequence[int],
        dtype: torch.dtype,
        device: torch.device,
        tag: object = None,
    ) -> tuple[torch.Tensor, bool]:
        """The tensor called ``name`` (contents left from its last use), and whether it is
        new or was last asked for with another ``tag`` (a caller's note of what its
        contents depend on besides the shape)."""
        shape = tuple(int(s) for s in shape)
        tensor = self._tensors.get(name)
        changed = self._tags.get(name) != tag
        self._tags[name] = tag
        if (
            tensor is not None
            and tuple(tensor.shape) == shape
            and tensor.dtype == dtype
            and _same_device(tensor.device, torch.device(device))
        ):
            return tensor, changed
        tensor = torch.empty(shape, dtype=dtype, device=device)
        self._tensors[name] = tensor
        return tensor, True

    def clear(self) -> None:
        """Release every tensor."""
        self._tensors.clear()
        self._tags.clear()


def _same_device(have: torch.device, want: torch.device) -> bool:
    return have.type == want.type and (want.index is None or have.index == want.index)
