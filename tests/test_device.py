"""The compute device and the precision networks compute in."""

import pytest
import torch

from medseg import device as device_module
from medseg.device import autocast, rank_device, resolve_device, resolve_precision
from medseg.errors import ConfigError
from medseg.parallel import Ranks

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_the_cpu_follows_its_bfloat16_support(native, monkeypatch):
    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: native)
    assert resolve_precision("auto", CPU) == (torch.bfloat16 if native else torch.float32)


def test_named_precisions_are_taken_as_named_and_others_refused():
    assert resolve_precision("float32", CPU) == torch.float32
    assert resolve_precision("bfloat16", CPU) == torch.bfloat16
    with pytest.raises(ConfigError, match="--precision half: expected one of"):
        resolve_precision("half", CPU)


def test_float32_autocast_changes_nothing_and_bfloat16_computes_in_it():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast(CPU, torch.float32):
        exact = a @ b
    with autocast(CPU, torch.bfloat16):
        half = a @ b
    assert exact.dtype == torch.float32 and torch.equal(exact, a @ b)
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), exact, atol=0.1)


def test_cuda_without_a_gpu_is_an_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto") == CPU


def test_each_rank_of_a_job_on_gpus_takes_its_own(monkeypatch):
    second = Ranks(rank=1, world_size=2, local_rank=1, local_world_size=2)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert rank_device(torch.device("cuda"), second) == torch.device("cuda", 1)
    assert rank_device(torch.device("cpu"), second) == torch.device("cpu")
    assert rank_device(torch.device("cuda"), Ranks()) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="local rank 1 has no GPU"):
        rank_device(torch.device("cuda"), second)
