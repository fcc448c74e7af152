"""Choosing the compute device."""

from __future__ import annotations

import torch

from medseg.errors import ConfigError
from medseg.parallel import Ranks

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available (use --device cpu)")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name}: expected one of {', '.join(DEVICES)}")
    return torch.device(name)


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """This process's device in a torchrun job: ``cuda:LOCAL_RANK`` for CUDA (one process per
    GPU); any other device, or a single process, stays as it is. `ConfigError` for a local
    rank without a GPU of its own."""
    if not ranks.distributed or device.type != "cuda":
        return device
    if ranks.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"local rank {ranks.local_rank} has no GPU ({torch.cuda.device_count()} on this "
            "machine): start at most one process per GPU"
        )
    return torch.device("cuda", ranks.local_rank)


PRECISIONS = ("auto", "float32", "bfloat16", "float16")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU
    with AMX or AVX-512 BF16 instructions (where bfloat16 convolutions run about twice as
    fast as float32 ones; elsewhere oneDNN emulates them, slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The type networks compute in (under autocast; weights and sums stay float32).
    ``auto``: float16 on CUDA, bfloat16 on a CPU that computes it natively
    (`native_bfloat16`), else float32. ``bfloat16`` on a GPU without it is an error."""
    if name not in PRECISIONS:
        raise ConfigError(f"--precision {name}: expected one of {', '.join(PRECISIONS)}")
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    if name == "bfloat16" and device.type == "cuda" and not native_bfloat16(device):
        raise ConfigError("--precision bfloat16: this GPU does not support it (use float16)")
    return getattr(torch, name)


def autocast(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """``torch.autocast`` on ``device`` in ``dtype``; a no-op for float32."""
    enabled = dtype != torch.float32
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)
