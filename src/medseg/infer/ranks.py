"""Sharing a cohort among the processes of a ``torchrun`` job, on one machine or several.

`medseg predict` run by torchrun takes every ``WORLD_SIZE``-th case of the input list from
its ``RANK`` on (`medseg.parallel.Ranks.items`: a fixed share, so that a restarted job
resumes), uses ``cuda:LOCAL_RANK`` when it runs on GPUs and its part of the machine's cores
otherwise. No process group is needed: the ranks meet only in the output folder, whose
``predictions.json`` they update in turn under a lock (`medseg.runs.manifest.run_lock`).
"""

from __future__ import annotations

import torch

from medseg.errors import ConfigError
from medseg.parallel import Ranks


def rank_device(ranks: Ranks, name: str) -> str:
    """``auto`` or ``cuda`` becomes ``cuda:LOCAL_RANK`` for a rank of a job on GPUs; any
    other choice, or a single process, stays as it is."""
    if not ranks.distributed or name not in ("auto", "cuda") or not torch.cuda.is_available():
        return name
    if ranks.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"local rank {ranks.local_rank} has no GPU ({torch.cuda.device_count()} on this "
            "machine): start at most one process per GPU"
        )
    return f"cuda:{ranks.local_rank}"
