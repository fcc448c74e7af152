"""The learning-rate schedule shared by segmentation and registration training."""

from __future__ import annotations

import pytest

from medseg.loop.schedule import poly_learning_rate


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
