"""Training: configuration, patch sampling, the loop, checkpoints."""

from medseg.device import resolve_device
from medseg.nn.checkpoint import load_weights, save_weights
from medseg.runs import (
    BEST_WEIGHTS,
    LATEST_WEIGHTS,
    Decision,
    Plan,
    apply_overrides,
    network_for,
)
from medseg.train.auto_config import auto_config
from medseg.train.cross_validation import (
    cross_validation_complete,
    summarise_cross_validation,
    train_folds,
)
from medseg.train.options import PlanOptions, TrainOptions
from medseg.train.plan_dataset import configure_plan, plan_dataset, preprocess_with_plan
from medseg.train.planner import make_plan
from medseg.train.run import train_run
from medseg.train.trainer import Trainer, TrainResult

__all__ = [
    "BEST_WEIGHTS",
    "LATEST_WEIGHTS",
    "Decision",
    "Plan",
    "PlanOptions",
    "TrainResult",
    "TrainOptions",
    "Trainer",
    "apply_overrides",
    "cross_validation_complete",
    "auto_config",
    "configure_plan",
    "load_weights",
    "make_plan",
    "network_for",
    "plan_dataset",
    "preprocess_with_plan",
    "resolve_device",
    "save_weights",
    "summarise_cross_validation",
    "train_folds",
    "train_run",
]
