"""Segmentation metrics (numpy only; no torch)."""

from medseg.metrics.overlap import dice, dice_per_label

__all__ = ["dice", "dice_per_label"]
