"""Segmentation metrics (numpy only; no torch)."""

from medseg.metrics.evaluate import (
    Evaluation,
    evaluate_folders,
    score_case,
    summarise,
    write_evaluation,
)
from medseg.metrics.overlap import dice, dice_per_label

__all__ = [
    "Evaluation",
    "dice",
    "dice_per_label",
    "evaluate_folders",
    "score_case",
    "summarise",
    "write_evaluation",
]
