"""The planner: decisions from the fingerprint, network chosen by measured throughput."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import open_dataset
from medseg.errors import ConfigError
from medseg.preprocess import compute_fingerprint
from medseg.train import Plan, apply_overrides, make_plan, planner
from medseg.train.planner import (
    MIN_ITERATIONS,
    WIDE_MIN_ITERATIONS,
    Candidate,
    candidates,
    choose_candidate,
    normalization,
    steps_cap,
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


def test_the_largest_affordable_patch_wins_then_a_wider_network_only_for_long_trainings() -> None:
    options = candidates((64, 64, 32), (1.0, 1.0, 1.0), 3, "cpu")
    costs = [c.cost for c in options]
    assert costs == sorted(costs) and len(options) >= 3
    # pretend a step costs time proportional to the candidate's cost
    scale = options[-1].cost

    def measure(candidate: Candidate) -> float:
        return 2.0 * candidate.cost / scale

    budget = 60.0 * 10
    chosen, step, notes = choose_candidate(options, budget, measure, None)
    narrowest = min(c.features[0] for c in options)

    def fits(c: Candidate) -> bool:
        needed = MIN_ITERATIONS if c.features[0] == narrowest else WIDE_MIN_ITERATIONS
        return budget * 0.85 / measure(c) >= needed

    largest_patch = max(np.prod(c.patch_size) for c in options if fits(c))
    at_patch = [c for c in options if fits(c) and np.prod(c.patch_size) == largest_patch]
    assert chosen == max(at_patch, key=lambda c: c.features[0])
    assert step == measure(chosen)


def _grid_choice(seconds: dict, cap=lambda candidate: None) -> tuple[Candidate, list[str]]:
    """The choice among two patches x two widths timed at ``seconds`` per step."""
    grid = [
        Candidate(list(patch), [[1, 1, 1]], [[3, 3, 3]], [width], 2)
        for patch, width in seconds
    ]  # fmt: skip
    chosen, _, notes = choose_candidate(
        grid, 600.0, lambda c: seconds[(tuple(c.patch_size), c.features[0])], None, cap=cap
    )
    return chosen, notes


def test_width_is_bought_only_with_steps_to_spare() -> None:
    small, large = (16, 16, 16), (24, 24, 24)
    # 600 s x 0.85 budget: 0.01 s/step affords 51,000 steps, 0.3 s 1,700, 2 s 255
    # a wide network at the small patch that does not fit does not end the search; the
    # large patch wins with the narrow network, and its wide one (1,700 < 2 x 10,000) is
    # never timed
    chosen, notes = _grid_choice(
        {(small, 8): 0.01, (small, 16): 2.0, (large, 8): 0.3, (large, 16): 0.5}
    )
    assert (chosen.patch_size, chosen.features) == ([24, 24, 24], [8])
    assert len(notes) == 3
    # 1,700 steps of the wide network at the large patch: more than MIN_ITERATIONS, fewer
    # than WIDE_MIN_ITERATIONS -> still the narrow one
    chosen, _ = _grid_choice({(large, 8): 0.01, (large, 16): 0.3})
    assert chosen.features == [8]
    # with steps to spare the wider network wins
    chosen, _ = _grid_choice({(large, 8): 0.01, (large, 16): 0.04})
    assert chosen.features == [16]
    # unless the data caps every model under WIDE_MIN_ITERATIONS steps: the wide network
    # would train no more steps than the narrow one, so it is not even timed
    chosen, notes = _grid_choice({(large, 8): 0.01, (large, 16): 0.04}, cap=lambda c: 5_000)
    assert chosen.features == [8] and len(notes) == 1 and "(capped at 5000)" in notes[0]


def test_a_cpu_trains_batches_of_two_in_2d_as_in_3d() -> None:
    # more steps beat larger batches at CPU budgets (docs/plan.md#width-against-steps)
    assert {c.batch_size for c in candidates((144, 200), (1.0, 1.0), 2, "cpu")} == {2}
    assert {c.batch_size for c in candidates((40, 56, 40), (1.0, 1.0, 1.0), 3, "cpu")} == {2}
    assert {c.batch_size for c in candidates((144, 200), (1.0, 1.0), 2, "cuda")} == {12}


def test_a_cpu_may_narrow_a_2d_network_to_eight_features() -> None:
    # steps were worth more than width on a 2D set (docs/plan.md#width-against-steps)
    widths = {c.features[0] for c in candidates((144, 200), (1.0, 1.0), 2, "cpu")}
    assert widths == {8, 16, 32}
    assert {c.features[0] for c in candidates((40, 56, 40), (1.0, 1.0, 1.0), 3, "cpu")} == {16, 32}
    assert {c.features[0] for c in candidates((144, 200), (1.0, 1.0), 2, "cuda")} == {32}


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


def test_a_small_dataset_caps_the_steps_a_long_budget_would_buy(
    phantom_fingerprint, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 phantom cases are a few patches of data: 750 steps (the floor) are all they get
    dataset, fp = phantom_fingerprint
    step = {"seconds": 0.5}  # 60 min x 0.85 / 0.5 s = 6,120 steps: the short recipe
    monkeypatch.setattr(planner, "seconds_per_iteration", lambda *a, **k: step["seconds"])
    plan = make_plan(fp, dataset.spec, budget_minutes=60.0)
    assert plan.max_iterations == MIN_ITERATIONS
    cap = next(d for d in plan.decisions if d.setting == "max_iterations")
    assert cap.value == MIN_ITERATIONS and "overfit" in cap.reason
    # and without --fold its steps are found on fold 0 first
    assert plan.held_out_stop
    held_out = next(d for d in plan.decisions if d.setting == "held_out_stop")
    assert "fold 0" in held_out.reason
    recipe = next(d for d in plan.decisions if d.setting == "recipe")
    assert recipe.reason.startswith(f"{MIN_ITERATIONS} planned steps")
    assert steps_cap(fp, plan.preprocessing.target_spacing, [4, 4, 4], 2) > MIN_ITERATIONS
    assert make_plan(fp, dataset.spec).max_iterations is None  # no budget, no cap
    # a budget that seems to afford fewer steps (102) keeps the cap: step timing can be off
    short = make_plan(fp, dataset.spec, budget_minutes=1.0)
    assert short.max_iterations == MIN_ITERATIONS
    reason = next(d.reason for d in short.decisions if d.setting == "max_iterations")
    assert "if the clock has not stopped it" in reason
    # ... but its 102 steps are under twice the cap: a search on fold 0 would end on the clock
    assert not short.held_out_stop
    why = next(d.reason for d in short.decisions if d.setting == "held_out_stop")
    assert "affords 102 steps" in why and f"twice the cap ({MIN_ITERATIONS})" in why
    # 61,200 steps: still capped and still the short recipe (nnU-Net's overfits too), so a
    # longer budget never gets less than a shorter one
    step["seconds"] = 0.05
    plan = make_plan(fp, dataset.spec, budget_minutes=60.0)
    assert plan.max_iterations == MIN_ITERATIONS and plan.optimizer == "adamw"
    # a dataset whose cap is over UNCAPPED_STEPS is not capped; 16,000 steps keep the short
    # recipe (it beat nnU-Net's there on the 2D slices set), 61,200 get nnU-Net's
    monkeypatch.setattr(planner, "PATCHES_PER_SHARE", 10**6)
    plan = make_plan(fp, dataset.spec, budget_minutes=16_000 * 0.05 / 0.85 / 60)
    assert plan.max_iterations is None and plan.optimizer == "adamw"
    assert plan.augmentation.mirror.probability == 0.0
    plan = make_plan(fp, dataset.spec, budget_minutes=60.0)
    assert plan.max_iterations is None and plan.optimizer == "sgd"
    assert not plan.held_out_stop


def test_a_network_set_by_hand_is_timed_against_the_budget(phantom_fingerprint) -> None:
    # a patch or width given with a budget used to skip the timing: the recipe then assumed
    # 10,000 steps (SGD) and plan.json named the planner's network instead of the user's
    dataset, fp = phantom_fingerprint
    levels = len(make_plan(fp, dataset.spec).strides)  # the phantom is one patch at any size
    widths = [8 * 2**i for i in range(levels)]
    for given in ({"patch_size": [16, 16, 8]}, {"features": widths}):
        plan = make_plan(fp, dataset.spec, budget_minutes=0.2, **given)
        network = next(d for d in plan.decisions if d.setting == "network")
        iterations = next(d.value for d in plan.decisions if d.setting == "iterations")
        field, value = next(iter(given.items()))
        assert getattr(plan, field) == value
        assert f"{field} set" in network.reason and "(as set)" in network.reason
        assert plan.seconds_per_iteration is not None
        assert iterations == int(0.2 * 60 * 0.85 / plan.seconds_per_iteration)
        assert plan.optimizer == "adamw"  # a 12-second budget affords far under 10,000 steps
        if field == "features":
            assert network.value.endswith(f"features 8-{widths[-1]}")


def test_a_network_named_with_set_is_the_one_timed(phantom3d, monkeypatch) -> None:
    from medseg.train import PlanOptions, plan_dataset

    timed: set[str] = set()
    original = planner.build_network

    def watched(model, *args, **kwargs):
        timed.add(model)
        return original(model, *args, **kwargs)

    monkeypatch.setattr(planner, "build_network", watched)
    options = PlanOptions(minutes=0.2, settings={"model": "resunet"}, quiet=True)
    assert plan_dataset(phantom3d, options).model == "resunet"
    assert timed == {"resunet"}


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


@pytest.mark.parametrize("mixed_precision", [True, False])
def test_candidates_are_timed_in_the_precision_training_uses(
    phantom_fingerprint, monkeypatch: pytest.MonkeyPatch, mixed_precision: bool
) -> None:
    """On a CPU with native bfloat16 (pretended here) mixed precision trains in bfloat16, so
    the planner must time its candidates so; without mixed precision, in float32."""
    import torch

    from medseg import device as device_module

    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: True)
    seen: set[torch.dtype] = set()
    original = planner.build_network

    def watched(*args, **kwargs):
        network = original(*args, **kwargs)
        network.register_forward_hook(lambda m, a, out: seen.add(out[0].dtype))
        return network

    monkeypatch.setattr(planner, "build_network", watched)
    dataset, fp = phantom_fingerprint
    make_plan(fp, dataset.spec, budget_minutes=1.0, mixed_precision=mixed_precision)
    assert seen == {torch.bfloat16 if mixed_precision else torch.float32}
