"""The training budget: epochs or minutes, the fraction spent, whether an epoch fits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from medseg.loop import budget as budget_module
from medseg.loop.budget import Budget


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A clock the test moves by hand (``clock.now`` seconds)."""
    fake = SimpleNamespace(now=100.0)
    monkeypatch.setattr(budget_module, "time", SimpleNamespace(perf_counter=lambda: fake.now))
    return fake


def test_an_epoch_budget_counts_steps() -> None:
    budget = Budget(epochs=3, steps_per_epoch=10)
    assert not budget.by_time and budget.total_steps == 30 and budget.seconds is None
    assert budget.fraction_done(0) == 0.0 and budget.fraction_done(15) == 0.5
    assert not budget.spent(29) and budget.spent(30)
    assert budget.epoch_left(2) and not budget.epoch_left(3)


def test_a_time_budget_counts_the_clock_and_the_time_before_a_resume(clock) -> None:
    budget = Budget(minutes=1, steps_per_epoch=10, seconds_before=15.0)
    assert budget.by_time and budget.total_steps is None and budget.seconds == 60
    clock.now += 15
    assert budget.elapsed() == 30 and budget.fraction_done(steps=999) == 0.5
    assert not budget.spent(steps=999)
    assert budget.epoch_left(0)  # the first epoch always starts
    assert budget.epoch_left(1, last_epoch_seconds=30)  # ends exactly at the budget
    assert not budget.epoch_left(1, last_epoch_seconds=31)
    clock.now += 30
    assert budget.spent(steps=0) and budget.fraction_done(0) == 1.0
    budget.restart()
    assert budget.elapsed() == 15  # only the time before the resume


def test_a_time_budget_ends_at_its_step_cap_with_time_left(clock) -> None:
    budget = Budget(minutes=10, steps_per_epoch=10, max_steps=40)
    clock.now += 60  # a tenth of the time, half the steps: the schedule follows the steps
    assert budget.fraction_done(20) == 0.5 and not budget.spent(39) and budget.spent(40)
    assert budget.epoch_left(3) and not budget.epoch_left(4)
    clock.now += 480  # 0.9 of the time, a quarter of the steps: the clock leads
    assert budget.fraction_done(10) == pytest.approx(0.9)
    assert Budget(epochs=1, steps_per_epoch=10, max_steps=5).total_steps == 10  # epochs win


def test_epochs_count_when_both_are_set(clock) -> None:
    budget = Budget(epochs=1, minutes=0.01, steps_per_epoch=4)
    clock.now += 3600
    assert not budget.by_time and budget.fraction_done(2) == 0.5 and not budget.spent(3)


def test_without_a_budget_nothing_is_spent_or_left_to_guess() -> None:
    with pytest.raises(ValueError, match="set a budget"):
        Budget().fraction_done(0)
    with pytest.raises(ValueError, match="set a budget"):
        Budget().spent(0)
