"""Ctrl-C during training is taken at a step boundary; a second one stops at once."""

from __future__ import annotations

import os
import signal

import pytest

from medseg.loop.interrupt import deferred_interrupt


def test_first_sigint_is_deferred_and_the_second_interrupts() -> None:
    before = signal.getsignal(signal.SIGINT)
    with deferred_interrupt() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # delivered here, recorded, nothing raised
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            signal.sigtimedwait([], 0)  # give the handler a bytecode boundary to run at
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_no_request_no_interrupt() -> None:
    with deferred_interrupt() as stop:
        stop.check()
    assert not stop.requested
