"""An exponential moving average (EMA) of the network's weights, kept beside the training.

With ``ema_decay`` set in the plan, every optimiser step moves the average towards the
network's new weights by ``1 - d``, where ``d`` ramps up as ``(1 + t) / (10 + t)`` after
``t`` averaged steps until it reaches ``ema_decay``: early on the average follows the network
closely, later it spans roughly the last tenth of the training (and at most ``1 / (1 -
ema_decay)`` steps), so an average never holds much of the untrained start. Validation,
best-epoch choice and the saved weights use the average; the optimiser keeps training the
network itself. PyTorch's `AveragedModel` keeps the copy (buffers too) and the step count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

#: The ramp's offset: after t averaged steps the decay is at most ``(1 + t) / (10 + t)``, so
#: 0.5 after 8 steps, 0.9 after 81 and 0.999 only after 8,990.
RAMP_STEPS = 10


def ramped_decay(decay: float, averaged: int) -> float:
    """The decay of the step after ``averaged`` averaged steps: ``min(decay, (1 + t) / (10 +
    t))``.

    >>> round(ramped_decay(0.999, 0), 3), round(ramped_decay(0.999, 90), 3)
    (0.1, 0.91)
    >>> ramped_decay(0.999, 1_000_000)
    0.999
    """
    return min(decay, (1 + averaged) / (RAMP_STEPS + averaged))


_Update = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor | int], None]


def _moving_average(decay: float) -> _Update:
    """The in-place update `AveragedModel` calls with its tensors, the network's and the
    number of steps averaged so far."""

    def update(
        average: list[torch.Tensor], current: list[torch.Tensor], averaged: torch.Tensor | int
    ) -> None:
        weight = 1.0 - ramped_decay(decay, int(averaged))
        for a, c in zip(average, current, strict=True):
            if a.is_floating_point():
                a.lerp_(c.to(a.dtype), weight)
            else:  # a counter such as batch norm's: the network's own value
                a.copy_(c)

    return update


def weight_average(network: nn.Module, decay: float) -> AveragedModel:
    """A copy of ``network`` whose `update_parameters` moves it towards the network's weights
    (parameters and buffers) with the ramped ``decay``; its ``module`` is a network like the
    original, to validate and save."""
    return AveragedModel(network, multi_avg_fn=_moving_average(decay), use_buffers=True)
