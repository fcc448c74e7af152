"""The run-folder contract that training writes and inference reads: the plan, the weight
files of each fold and the manifest. It knows nothing of how training works."""

from medseg.runs.manifest import MANIFEST_FILE, read_manifest, record_fold
from medseg.runs.plan import (
    DEFAULT_LEARNING_RATE,
    PLAN_FILE,
    PLAN_VERSION,
    Decision,
    Plan,
    apply_overrides,
    network_for,
)
from medseg.runs.weights import BEST_WEIGHTS, LATEST_WEIGHTS, trained_networks, trained_weights

__all__ = [
    "BEST_WEIGHTS",
    "DEFAULT_LEARNING_RATE",
    "LATEST_WEIGHTS",
    "MANIFEST_FILE",
    "PLAN_FILE",
    "PLAN_VERSION",
    "Decision",
    "Plan",
    "apply_overrides",
    "network_for",
    "read_manifest",
    "record_fold",
    "trained_networks",
    "trained_weights",
]
