"""Segmentation losses."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class DiceCELoss(nn.Module):
    """Cross-entropy plus (1 - soft Dice) over the foreground classes.

    The soft Dice sums over the batch and all voxels before dividing ("batch Dice"), which
    keeps the gradient stable for patches where a class is absent.

    Examples
    --------
    >>> loss = DiceCELoss()
    >>> logits = torch.zeros(2, 3, 8, 8, requires_grad=True)
    >>> target = torch.zeros(2, 8, 8, dtype=torch.long)
    >>> float(loss(logits, target).detach()) > 0
    True
    """

    def __init__(self, smooth: float = 1e-5) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits``: (B, K, *spatial); ``target``: (B, *spatial) integer classes."""
        ce = F.cross_entropy(logits, target)
        probs = torch.softmax(logits, dim=1)[:, 1:]
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probs.dtype)
        axes = [0] + list(range(2, logits.ndim))
        intersection = (probs * onehot).sum(axes)
        denominator = probs.sum(axes) + onehot.sum(axes)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        return ce + (1 - dice.mean())
