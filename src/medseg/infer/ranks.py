"""Sharing a cohort among the processes of a ``torchrun`` job, on one machine or several.

torchrun gives every process ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
``LOCAL_WORLD_SIZE``; `medseg predict` run by it takes every ``WORLD_SIZE``-th case
starting at its ``RANK`` (of the whole input list, so the share does not depend on what
other ranks have finished), uses ``cuda:LOCAL_RANK`` when it runs on GPUs and its part of
the machine's cores otherwise. No process group is needed: the ranks meet only in the
output folder, whose ``predictions.json`` they update in turn under a lock
(`medseg.runs.manifest.run_lock`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

from medseg.errors import ConfigError
from medseg.parallel import available_cores

T = TypeVar("T")


@dataclass(frozen=True)
class CohortShare:
    """This process's place among the ranks (``world == 1``: alone)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    def cases(self, cases: Sequence[T]) -> list[T]:
        """This rank's cases: every ``world``-th, from the ``rank``-th on."""
        if len(cases) < self.world:
            raise ConfigError(
                f"{self.world} ranks for {len(cases)} case(s): start at most {len(cases)} "
                "processes (torchrun --nproc-per-node / --nnodes)"
            )
        return list(cases[self.rank :: self.world])

    def device(self, name: str) -> str:
        """``auto`` or ``cuda`` on GPUs becomes this process's own, ``cuda:LOCAL_RANK``."""
        if self.world == 1 or name not in ("auto", "cuda") or not torch.cuda.is_available():
            return name
        if self.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"local rank {self.local_rank} has no GPU ({torch.cuda.device_count()} on "
                "this machine): start at most one process per GPU"
            )
        return f"cuda:{self.local_rank}"

    def threads(self) -> int:
        """This process's share of the machine's cores."""
        return max(1, available_cores() // self.local_world)


def cohort_share() -> CohortShare:
    """The share torchrun's environment gives this process (alone without it)."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    if "WORLD_SIZE" not in os.environ:
        return CohortShare()
    try:
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    except (KeyError, ValueError):
        values = {n: os.environ.get(n) for n in names}
        problem = f"torchrun's environment is incomplete or not numbers: {values}"
        raise ConfigError(problem) from None
    if not (0 <= rank < world and 0 <= local_rank < local_world <= world):
        raise ConfigError(f"RANK {rank} / WORLD_SIZE {world} / LOCAL_RANK {local_rank} / "
                          f"LOCAL_WORLD_SIZE {local_world} do not fit together")  # fmt: skip
    return CohortShare(rank, world, local_rank, local_world)
