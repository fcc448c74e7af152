"""A training budget: a number of epochs or a number of minutes, and how much of it is spent."""

from __future__ import annotations

import time


class Budget:
    """Epochs of ``steps_per_epoch`` steps, or minutes of wall-clock time (with both set, the
    epochs count). A time budget may also end at ``max_steps`` steps with time left.

    The clock runs from construction or the last `restart`; ``seconds_before`` is the time
    spent before a resume and counts as spent.

    Examples
    --------
    >>> budget = Budget(epochs=2, steps_per_epoch=50)
    >>> budget.fraction_done(steps=25), budget.spent(steps=100)
    (0.25, True)
    >>> budget.epoch_left(epochs_done=1), budget.epoch_left(epochs_done=2)
    (True, False)
    >>> capped = Budget(minutes=60, steps_per_epoch=50, max_steps=100)
    >>> capped.fraction_done(steps=50), capped.spent(steps=100), capped.epoch_left(2)
    (0.5, True, False)
    """

    def __init__(
        self,
        epochs: int | None = None,
        minutes: float | None = None,
        steps_per_epoch: int = 1,
        seconds_before: float = 0.0,
        max_steps: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.max_steps = max_steps
        self.minutes = minutes
        self.steps_per_epoch = steps_per_epoch
        self.seconds_before = seconds_before
        self._start = time.perf_counter()

    @property
    def by_time(self) -> bool:
        """Whether the budget is minutes rather than epochs."""
        return self.epochs is None

    @property
    def total_steps(self) -> int | None:
        """The steps of an epoch budget (None for minutes)."""
        return None if self.epochs is None else self.epochs * self.steps_per_epoch

    @property
    def seconds(self) -> float | None:
        """The seconds of a time budget (None for epochs)."""
        return None if self.minutes is None else self.minutes * 60

    def restart(self) -> None:
        """Start the clock now (``seconds_before`` stays spent)."""
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds spent: before a resume, and since the clock started."""
        return self.seconds_before + time.perf_counter() - self._start

    def fraction_done(self, steps: int) -> float:
        """The share of the budget spent after ``steps`` steps (or by the clock), from 0 to 1
        (beyond 1 when a time budget is overrun)."""
        if self.total_steps is not None:
            return steps / self.total_steps
        by_steps = 0.0 if self.max_steps is None else steps / self.max_steps
        return max(self.elapsed() / self._time_budget(), by_steps)

    def spent(self, steps: int) -> bool:
        """Whether the budget is used up now: every step taken, or the time over. Checked
        between steps, a time budget ends in the middle of an epoch."""
        if self.total_steps is not None:
            return steps >= self.total_steps
        if self.max_steps is not None and steps >= self.max_steps:
            return True
        return self.elapsed() >= self._time_budget()

    def epoch_left(self, epochs_done: int, last_epoch_seconds: float = 0.0) -> bool:
        """Whether another whole epoch fits: fewer than ``epochs`` done, or (by time) the first
        epoch, or time left for one more as long as the last one (``last_epoch_seconds``)."""
        if self.epochs is not None:
            return epochs_done < self.epochs
        if self.max_steps is not None and epochs_done * self.steps_per_epoch >= self.max_steps:
            return False
        if epochs_done == 0:
            return True
        return self.elapsed() + last_epoch_seconds <= self._time_budget()

    def _time_budget(self) -> float:
        if self.minutes is None:
            raise ValueError("set a budget: epochs or minutes")
        return self.minutes * 60
