"""Ctrl-C during training (segmentation or registration), taken between two steps: the first
SIGINT asks the loop to stop, which then raises KeyboardInterrupt at the next step boundary
(never inside a library call such as a TensorBoard write or a figure being drawn); a second
SIGINT interrupts at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    """Whether Ctrl-C was pressed; `check` raises KeyboardInterrupt if so."""

    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        """Raise KeyboardInterrupt here, at a safe point, if a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt


@contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """Catch SIGINT while the block runs and record it in the yielded `StopRequest` (only in
    the main thread, where Python delivers signals; elsewhere nothing changes)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum: int, frame: object) -> None:
        if request.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        request.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)
