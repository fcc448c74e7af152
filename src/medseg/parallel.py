"""Running one function over many items in worker processes, with a progress bar."""

from __future__ import annotations

import multiprocessing
import os
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


def map_in_processes(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    jobs: int,
    description: str,
    quiet: bool = False,
) -> Iterator[Result]:
    """``function(item)`` for every item, in order, in ``jobs`` processes (in this process
    when ``jobs`` is 1), advancing a progress bar. ``function`` must be importable (defined
    at module level). Workers are started with 'spawn': safe from a process that already
    runs threads (torch), and they import only what ``function`` needs."""
    items = list(items)
    with make_progress(quiet) as progress:
        bar = progress.add_task(description, total=len(items))
        if jobs <= 1 or len(items) <= 1:
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


#: Below this many cases, starting worker processes costs more than it saves.
MIN_CASES_FOR_PROCESSES = 16


def default_case_jobs(cases: int) -> int:
    """Worker processes for a per-case job: one per core, or none for a few cases."""
    return available_cores() if cases >= MIN_CASES_FOR_PROCESSES else 1
