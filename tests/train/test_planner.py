"""The planner: decisions from the fingerprint, network chosen by measured throughput."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import open_dataset
from medseg.errors import ConfigError
from medseg.preprocess import compute_fingerprint
from medseg.train import Plan, apply_overrides, make_plan
from medseg.train.planner import (
    MIN_ITERATIONS,
    Candidate,
    candidates,
    choose_candidate,
    normalization,
    target_spacing,
)


@pytest.fixture
def phantom_fingerprint(phantom3d: Path):
    dataset = open_dataset(phantom3d)
    return dataset, compute_fingerprint(dataset, quiet=True)


def test_ct_channel_gets_ct_normalisation(phantom_fingerprint) -> None:
    _, fp = phantom_fingerprint
    (scheme,), reason = normalization(fp)
    stats = fp.channels[0].foreground
    assert scheme.scheme == "ct" and "CT" in reason
    assert (scheme.clip_low, scheme.clip_high) == (stats.p0_5, stats.p99_5)


def test_target_spacing_rule_for_anisotropic_data(phantom_fingerprint) -> None:
    _, fp = phantom_fingerprint
    spacing, axis, reason = target_spacing(fp)
    # 0.8 x 0.8 x 2.5 mm: the third axis is 3.1x coarser -> resampled on its own
    assert axis == 2 and spacing == pytest.approx([0.8, 0.8, 2.5])
    assert "10th percentile" in reason


def test_the_largest_affordable_patch_wins_then_the_widest_network_at_it() -> None:
    options = candidates((64, 64, 32), (1.0, 1.0, 1.0), 3, "cpu")
    costs = [c.cost for c in options]
    assert costs == sorted(costs) and len(options) >= 3
    # pretend a step costs time proportional to the candidate's cost
    scale = options[-1].cost

    def measure(candidate: Candidate) -> float:
        return 2.0 * candidate.cost / scale

    budget = 60.0 * 10
    chosen, step, notes = choose_candidate(options, budget, measure, None)
    fits = [c for c in options if budget * 0.85 / measure(c) >= MIN_ITERATIONS]
    largest_patch = max(np.prod(c.patch_size) for c in fits)
    at_patch = [c for c in fits if np.prod(c.patch_size) == largest_patch]
    assert chosen == max(at_patch, key=lambda c: c.features[0])
    assert step == measure(chosen)
    # a wider network at a smaller patch may cost more than a narrow one at a larger patch:
    # the larger patch still wins, and a width that does not fit does not end the search
    small, large = (16, 16, 16), (24, 24, 24)
    grid = [
        Candidate(list(patch), [[1, 1, 1]], [[3, 3, 3]], [width], 2)
        for patch in (small, large) for width in (8, 16)
    ]  # fmt: skip
    seconds = {(small, 8): 0.1, (small, 16): 2.0, (large, 8): 0.3, (large, 16): 5.0}
    chosen, _, notes = choose_candidate(
        grid, 600.0, lambda c: seconds[(tuple(c.patch_size), c.features[0])], None
    )
    assert (chosen.patch_size, chosen.features) == ([24, 24, 24], [8])
    assert len(notes) == 4


def test_a_tiny_budget_still_gets_the_cheapest_candidate() -> None:
    options = candidates((64, 64), (1.0, 1.0), 2, "cpu")
    chosen, _, _ = choose_candidate(options, 1.0, lambda c: 1.0, None)
    assert chosen == options[0]


def test_memory_limit_skips_candidates() -> None:
    options = candidates((128, 128, 128), (1.0, 1.0, 1.0), 3, "cpu")
    with pytest.raises(ConfigError, match="memory"):
        choose_candidate(options, 600.0, lambda c: 0.01, memory_gb=1e-9)


def test_plan_with_a_budget_times_real_candidates(phantom_fingerprint) -> None:
    dataset, fp = phantom_fingerprint
    plan = make_plan(fp, dataset.spec, budget_minutes=1.0)
    assert plan.preprocessing is not None and plan.preprocessing.separate_axis == 2
    assert plan.seconds_per_iteration is not None and plan.seconds_per_iteration > 0
    settings = {d.setting for d in plan.decisions}
    assert {"preprocessing.target_spacing", "network", "iterations"} <= settings
    network = next(d for d in plan.decisions if d.setting == "network")
    assert "s/step" in network.reason
    assert Plan.model_validate_json(plan.model_dump_json()) == plan


def test_plan_without_budget_uses_the_default_size(phantom_fingerprint) -> None:
    dataset, fp = phantom_fingerprint
    plan = make_plan(fp, dataset.spec)
    assert plan.seconds_per_iteration is None
    assert "default size" in next(d.reason for d in plan.decisions if d.setting == "network")


def test_every_field_can_be_overridden(phantom_fingerprint) -> None:
    dataset, fp = phantom_fingerprint
    plan = make_plan(fp, dataset.spec)
    changed = apply_overrides(
        plan,
        {"batch_size": 3, "preprocessing.target_spacing": [1.0, 1.0, 2.0], "optimizer": "sgd"},
    )
    assert changed.batch_size == 3 and changed.optimizer == "sgd"
    assert changed.preprocessing.target_spacing == [1.0, 1.0, 2.0]
    with pytest.raises(ConfigError, match="no setting 'batchsize'"):
        apply_overrides(plan, {"batchsize": 3})
    with pytest.raises(ConfigError, match="batch_size"):
        apply_overrides(plan, {"batch_size": 0})
