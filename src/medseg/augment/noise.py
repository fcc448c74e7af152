"""Data-sized Gaussian random numbers, drawn on several CPU cores.

PyTorch's CPU generator is one Mersenne twister that fills a tensor on one core: 2M normal
numbers (a 128^3 patch) take about 14 ms, the largest single cost of adding noise to a
batch. Here the tensor is cut into a fixed number of parts, each filled by its own
generator (seeded in turn from the run's generator) in its own thread, so the cores share
the work. The result depends on the seed and the shape only, never on the thread count.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

PARTS = 4  # fixed: the numbers drawn must not depend on the machine
_MIN_PART = 1 << 16  # smaller tensors are filled in one go
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PARTS, thread_name_prefix="medseg-noise")
        return _pool


def standard_normal(out: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Fill ``out`` with independent N(0, 1) numbers; the seeds of the parts come from
    ``generator`` (a CPU generator), whatever ``out``'s device.

    Examples
    --------
    >>> x = standard_normal(torch.empty(1_000_000), torch.Generator().manual_seed(0))
    >>> round(float(x.mean()), 2), round(float(x.std()), 2)
    (0.0, 1.0)
    >>> y = standard_normal(torch.empty(1_000_000), torch.Generator().manual_seed(0))
    >>> bool(torch.equal(x, y))
    True
    """
    seeds = torch.randint(0, 2**62, (PARTS,), generator=generator).tolist()
    flat = out.view(-1)
    if out.device.type != "cpu" or flat.numel() < PARTS * _MIN_PART:
        part_generator = torch.Generator(device=out.device).manual_seed(seeds[0])
        return out.normal_(generator=part_generator)
    parts = flat.chunk(PARTS)

    def fill(index: int) -> None:
        parts[index].normal_(generator=torch.Generator().manual_seed(seeds[index]))

    threads = min(PARTS, max(1, torch.get_num_threads()))
    if threads == 1:
        for index in range(PARTS):
            fill(index)
    else:
        list(_executor().map(fill, range(PARTS)))
    return out
