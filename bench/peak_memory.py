"""Peak resident memory of a piece of work, sampled every millisecond (Linux /proc)."""

from __future__ import annotations

import resource
import threading
import time


def rss_mib() -> float:
    """This process's resident set size in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakSampler:
    """Samples the resident set size in a thread from construction until `stop`."""

    def __init__(self) -> None:
        self.base = rss_mib()
        self.peak = self.base
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_mib())
            time.sleep(0.001)

    def stop(self) -> float:
        """Peak rise over the level at construction (MiB)."""
        self._done.set()
        self._thread.join()
        return max(self.peak, rss_mib()) - self.base
