"""Running one function over many items in worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from medseg.progress import make_progress

Item = TypeVar("Item")
Result = TypeVar("Result")


def available_cores() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def one_thread_per_worker() -> None:
    """Worker set-up: the processes share the cores, so each keeps its OpenMP libraries
    (loaded after this runs) to one thread."""
    os.environ["OMP_NUM_THREADS"] = "1"


#: With ``jobs=None``, worker processes start only when the items left after the first
#: would take longer than this in one process (starting a worker costs about a second).
POOL_WORTH_SECONDS = 4.0


def map_in_processes(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    jobs: int | None,
    description: str,
    quiet: bool = False,
) -> Iterator[Result]:
    """``function(item)`` for every item, in order, advancing a progress bar.

    ``jobs`` processes run it (this process alone for 1). ``None`` runs the first item here,
    and the rest in one process per core only if they would take more than
    ``POOL_WORTH_SECONDS`` here. ``function`` must be importable (module level, or a
    ``functools.partial`` of such). Workers are started with 'spawn': safe from a process
    that already runs threads (torch), and they import only what ``function`` needs.
    """
    items = list(items)
    with make_progress(quiet) as progress:
        bar = progress.add_task(description, total=len(items))
        if jobs is None and items:
            start = time.perf_counter()
            yield function(items[0])
            progress.advance(bar)
            items = items[1:]
            worth = (time.perf_counter() - start) * len(items) > POOL_WORTH_SECONDS
            jobs = available_cores() if worth else 1
        if jobs is None or jobs <= 1 or len(items) <= 1:
            for item in items:
                yield function(item)
                progress.advance(bar)
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(jobs, len(items)),
            mp_context=context,
            initializer=one_thread_per_worker,
        ) as pool:
            for result in pool.map(function, items, chunksize=1):
                yield result
                progress.advance(bar)
