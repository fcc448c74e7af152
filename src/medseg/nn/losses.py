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

    def __init__(self, smooth: float = 1e-5, ignore_index: int | None = None) -> None:
        super().__init__()
        self.smooth = smooth
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits``: (B, K, *spatial); ``target``: (B, *spatial) integer classes. Voxels of
        class ``ignore_index`` count neither in the cross-entropy nor in the Dice."""
        probs = torch.softmax(logits, dim=1)[:, 1:]
        if self.ignore_index is None:
            ce = F.cross_entropy(logits, target)
            valid = None
        else:
            valid = target != self.ignore_index
            # a patch of ignored voxels only has no cross-entropy term (not 0/0)
            ce = F.cross_entropy(logits, target, ignore_index=self.ignore_index, reduction="sum")
            ce = ce / valid.sum().clamp(min=1)
            target = torch.where(valid, target, torch.zeros_like(target))
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probs.dtype)
        if valid is not None:
            mask = valid[:, None].to(probs.dtype)
            probs, onehot = probs * mask, onehot * mask
        axes = [0] + list(range(2, logits.ndim))
        intersection = (probs * onehot).sum(axes)
        denominator = probs.sum(axes) + onehot.sum(axes)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        return ce + (1 - dice.mean())


class RegionDiceBCELoss(nn.Module):
    """Binary cross-entropy plus (1 - soft batch Dice) per region, on sigmoid outputs:
    nnU-Net's loss for region-based training (BraTS' nested tumour regions).

    ``membership`` ``(R, K)``: whether training class k belongs to region r; the target holds
    classes, the network one logit per region.

    Examples
    --------
    >>> loss = RegionDiceBCELoss(torch.tensor([[0, 1, 1], [0, 0, 1]], dtype=torch.bool))
    >>> logits = torch.zeros(2, 2, 8, 8, requires_grad=True)
    >>> target = torch.randint(0, 3, (2, 8, 8))
    >>> float(loss(logits, target).detach()) > 0
    True
    """

    def __init__(self, membership: torch.Tensor, smooth: float = 1e-5) -> None:
        super().__init__()
        self.register_buffer("membership", membership.to(torch.float32))
        self.smooth = smooth

    def regions(self, target: torch.Tensor) -> torch.Tensor:
        """The binary region masks ``(B, R, *spatial)`` of a class target ``(B, *spatial)``."""
        onehot = F.one_hot(target, self.membership.shape[1]).movedim(-1, 1)
        return torch.einsum("rk,bk...->br...", self.membership, onehot.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits``: (B, R, *spatial); ``target``: (B, *spatial) integer classes."""
        regions = self.regions(target).to(logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, regions)
        probs = torch.sigmoid(logits)
        axes = [0] + list(range(2, logits.ndim))
        intersection = (probs * regions).sum(axes)
        denominator = probs.sum(axes) + regions.sum(axes)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        return bce + (1 - dice.mean())


def deep_supervision_weights(n_outputs: int) -> list[float]:
    """Weights of the outputs of a deeply supervised network, finest first: halving with each
    coarser scale, normalised to sum to 1 (nnU-Net's scheme).

    Examples
    --------
    >>> [round(w, 3) for w in deep_supervision_weights(3)]
    [0.571, 0.286, 0.143]
    """
    raw = [0.5**i for i in range(n_outputs)]
    return [w / sum(raw) for w in raw]


class DeepSupervisionLoss(nn.Module):
    """A loss applied at every output scale of a deeply supervised network, weighted by
    `deep_supervision_weights`; the target is reduced to each coarser scale by nearest
    neighbour, so labels are never mixed. A single tensor is passed straight to the loss.

    Examples
    --------
    >>> loss = DeepSupervisionLoss(DiceCELoss())
    >>> outputs = [torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4)]
    >>> float(loss(outputs, torch.zeros(2, 8, 8, dtype=torch.long))) > 0
    True
    """

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(
        self, outputs: torch.Tensor | list[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        """``outputs``: logits, or a list of logits finest first; ``target``: (B, *spatial).
        Logits from a network run under autocast are scored in float32."""
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs.float(), target)
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, logits in zip(deep_supervision_weights(len(outputs)), outputs):
            scaled = target
            if logits.shape[2:] != target.shape[1:]:
                scaled = F.interpolate(target[:, None].float(), logits.shape[2:], mode="nearest")
                scaled = scaled[:, 0].long()
            total = total + weight * self.loss(logits.float(), scaled)
        return total
