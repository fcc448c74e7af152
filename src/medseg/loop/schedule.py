"""The schedule of every training loop: the learning rate's polynomial decay over the
budget, when to validate, and when validation ends training early."""

from __future__ import annotations

from collections.abc import Sequence

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


def validation_due(
    *,
    share: float,
    elapsed: float,
    validation_seconds: float,
    last_validation_seconds: float | None,
    last_epoch: bool,
) -> bool:
    """Whether a time-budgeted loop validates after this epoch: always the first time (to
    learn what a validation costs) and after the last epoch; otherwise only while the time
    spent validating, this validation included, stays within ``share`` of the time spent.

    Validating every epoch cost 11 % of a 30-minute Hippocampus training (40 validation
    cases, 100 steps an epoch) and more of shorter ones, time the budget then lacks for
    training steps.

    Examples
    --------
    >>> validation_due(share=0.05, elapsed=100.0, validation_seconds=0.0,
    ...                last_validation_seconds=None, last_epoch=False)
    True
    >>> validation_due(share=0.05, elapsed=100.0, validation_seconds=5.0,
    ...                last_validation_seconds=5.0, last_epoch=False)
    False
    >>> validation_due(share=0.05, elapsed=200.0, validation_seconds=5.0,
    ...                last_validation_seconds=5.0, last_epoch=False)
    True
    >>> validation_due(share=0.05, elapsed=100.0, validation_seconds=5.0,
    ...                last_validation_seconds=5.0, last_epoch=True)
    True
    """
    if last_epoch or last_validation_seconds is None or share >= 1:
        return True
    after = elapsed + last_validation_seconds  # the time spent once this one is done
    return validation_seconds + last_validation_seconds <= share * after


def early_stop_due(best: float, since_best: Sequence[float], patience: int, decline: float) -> bool:
    """Whether validation ends training: ``patience`` validations since the ``best`` smoothed
    Dice (``since_best``, their smoothed Dice, none of them better), the last of them at least
    ``decline`` under it (0: any; a positive fall tells a peak from a plateau).

    Examples
    --------
    >>> early_stop_due(0.88, [0.8799, 0.8798, 0.8799], patience=3, decline=0.0)
    True
    >>> early_stop_due(0.88, [0.8799, 0.8798, 0.8799], patience=3, decline=0.002)
    False
    >>> early_stop_due(0.88, [0.879, 0.876, 0.877], patience=3, decline=0.002)
    True
    >>> early_stop_due(0.88, [0.85, 0.84], patience=3, decline=0.002)
    False
    """
    return len(since_best) >= patience and best - since_best[-1] >= decline
