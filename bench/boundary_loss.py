"""Does a loss that weights the label boundaries sharpen Hippocampus's posterior label?

84-85 % of the voxels medseg gets wrong on Hippocampus lie on the outer boundary
(bench/label_confusion.py). This runs bench/accuracy.py with medseg's Dice + cross-entropy
plus ``--boundary-weight`` times the mean cross-entropy over the boundary voxels (those whose
3×3(×3) neighbourhood in the reference holds more than one class), at every deep-supervision
scale; everything else is medseg's default. The peer runs as in bench/accuracy.py.

Usage: python bench/boundary_loss.py --boundary-weight 1 --fold 0 --minutes 10 --skip-monai
       --out DIR   (every argument but the first goes to bench/accuracy.py)
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

from medseg.nn import DiceCELoss


def boundary_mask(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Voxels of ``target`` (B, *spatial) whose 3^d neighbourhood holds more than one class."""
    onehot = F.one_hot(target, num_classes).movedim(-1, 1).float()
    pool = F.max_pool3d if target.ndim == 4 else F.max_pool2d
    present = pool(onehot, 3, stride=1, padding=1).sum(1)
    return present > 1


class BoundaryWeightedLoss(DiceCELoss):
    """`DiceCELoss` plus ``weight`` × the mean cross-entropy over the boundary voxels."""

    def __init__(self, weight: float, ignore_index: int | None = None) -> None:
        super().__init__(ignore_index=ignore_index)
        if ignore_index is not None:
            raise ValueError("this experiment does not handle an ignore label")
        self.weight = weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, target)
        edge = boundary_mask(target, logits.shape[1])
        per_voxel = F.cross_entropy(logits, target, reduction="none")
        return loss + self.weight * (per_voxel * edge).sum() / edge.sum().clamp(min=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boundary-weight", type=float, required=True)
    args, rest = parser.parse_known_args()
    from medseg.train import trainer

    def loss(ignore_index: int | None = None) -> DiceCELoss:
        return BoundaryWeightedLoss(args.boundary_weight, ignore_index)

    trainer.DiceCELoss = loss  # type: ignore[misc,assignment]
    print(f"boundary weight {args.boundary_weight}")
    sys.argv = [str(Path(__file__).with_name("accuracy.py")), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
