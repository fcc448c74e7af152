"""The learning-rate schedule of every training loop: polynomial decay over the budget."""

from __future__ import annotations

#: The schedule's exponent (nnU-Net's "poly" schedule).
POWER = 0.9
#: The fraction is capped below 1 so that the last steps still learn a little.
LAST_FRACTION = 0.999


def poly_learning_rate(base: float, fraction_done: float) -> float:
    """``base * (1 - fraction_done) ** 0.9``, the fraction of the budget spent capped at 0.999.

    Examples
    --------
    >>> poly_learning_rate(0.01, 0.0)
    0.01
    >>> round(poly_learning_rate(0.01, 0.5), 6)
    0.005359
    >>> poly_learning_rate(0.01, 1.5) == poly_learning_rate(0.01, 0.999)
    True
    """
    return base * (1 - min(fraction_done, LAST_FRACTION)) ** POWER
