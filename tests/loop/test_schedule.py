"""The learning-rate schedule shared by segmentation and registration training."""

from __future__ import annotations

import pytest

from medseg.loop.schedule import poly_learning_rate, validation_due


def test_poly_decays_from_the_base_rate_to_almost_nothing() -> None:
    fractions = [i / 10 for i in range(11)]
    rates = [poly_learning_rate(0.01, f) for f in fractions]
    assert rates[0] == 0.01
    assert all(a > b for a, b in zip(rates, rates[1:]))  # strictly decreasing
    for fraction, rate in zip(fractions[:-1], rates):
        assert rate == pytest.approx(0.01 * (1 - fraction) ** 0.9)
    assert 0 < rates[-1] == pytest.approx(0.01 * 0.001**0.9)  # the last steps still learn


def test_an_overrun_budget_keeps_the_last_rate() -> None:
    """A time budget ends after the step that crosses it: the fraction may exceed 1."""
    assert poly_learning_rate(3e-3, 1.2) == poly_learning_rate(3e-3, 0.999)


def test_validation_is_due_first_last_and_within_its_share() -> None:
    def due(spent: float, elapsed: float, last: float | None, last_epoch: bool = False) -> bool:
        return validation_due(
            share=0.1,
            elapsed=elapsed,
            validation_seconds=spent,
            last_validation_seconds=last,
            last_epoch=last_epoch,
        )

    assert due(0.0, 5.0, None)  # the first: its cost is not known yet
    assert not due(10.0, 20.0, 10.0)  # 20 s of 30 would be validation
    assert not due(10.0, 189.0, 10.0)  # 20 of 199: just over 10 %
    assert due(10.0, 190.0, 10.0)  # 20 of 200: exactly 10 %
    assert due(10.0, 20.0, 10.0, last_epoch=True)  # the last epoch always validates
    assert validation_due(
        share=1.0, elapsed=1.0, validation_seconds=50.0, last_validation_seconds=50.0,
        last_epoch=False,
    )  # fmt: skip
