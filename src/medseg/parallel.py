"""Running one function over many items in worker processes, with a progress bar; and this
process's place among the processes torchrun started (`Ranks`)."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from medseg.errors import ConfigError
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


@dataclass(frozen=True)
class Ranks:
    """This process's place among torchrun's processes (a single process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process plans, validates and writes (rank 0)."""
        return self.rank == 0

    def share(self, batch_size: int) -> slice:
        """This rank's part of a global batch of ``batch_size`` samples.

        Examples
        --------
        >>> Ranks(rank=1, world_size=2).share(4)
        slice(2, 4, None)
        """
        if batch_size % self.world_size:
            raise ConfigError(
                f"the batch of {batch_size} does not split over {self.world_size} processes: "
                f"--batch-size must be a multiple of {self.world_size}"
            )
        part = batch_size // self.world_size
        return slice(self.rank * part, (self.rank + 1) * part)

    def items(self, items: Sequence[Item]) -> list[Item]:
        """This rank's items of a list all ranks hold alike: every ``world_size``-th from the
        ``rank``-th on (a fixed share, whatever the others have done).

        Examples
        --------
        >>> Ranks(rank=1, world_size=3).items(list(range(7)))
        [1, 4]
        """
        if len(items) < self.world_size:
            raise ConfigError(
                f"{self.world_size} processes for {len(items)} item(s): start at most "
                f"{len(items)} (torchrun --nproc-per-node / --nnodes)"
            )
        return list(items[self.rank :: self.world_size])

    def threads(self) -> int:
        """This process's share of the machine's cores."""
        return max(1, available_cores() // self.local_world_size)


def ranks_from_environment() -> Ranks:
    """The ranks torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``); a single process without them. `ConfigError` for values that are
    not numbers or do not fit together."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return Ranks()
    try:
        world = int(env["WORLD_SIZE"])
        ranks = Ranks(int(env["RANK"]), world, int(env.get("LOCAL_RANK", 0)),
                      int(env.get("LOCAL_WORLD_SIZE", world)))  # fmt: skip
    except ValueError:
        names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
        values = {name: env.get(name) for name in names}
        problem = f"torchrun's environment holds values that are not numbers: {values}"
        raise ConfigError(problem) from None
    fits = 0 <= ranks.rank < world and 0 <= ranks.local_rank < ranks.local_world_size <= world
    if not fits:
        raise ConfigError(f"torchrun's environment does not fit together: {ranks}")
    return ranks
