import pytest
import torch

from medseg.errors import RunFolderError
from medseg.nn import UNet, load_weights, save_weights


def test_weights_round_trip_exactly(tmp_path):
    torch.manual_seed(0)
    a, b = UNet(1, 2, 2, (4, 8)), UNet(1, 2, 2, (4, 8))
    save_weights(a, tmp_path / "w.safetensors", {"epoch": "3"})
    load_weights(b, tmp_path / "w.safetensors")
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_weights_of_another_network_are_refused(tmp_path):
    save_weights(UNet(1, 2, 2, (4, 8)), tmp_path / "w.safetensors")
    with pytest.raises(RunFolderError, match="do not fit"):
        load_weights(UNet(1, 3, 2, (4, 8)), tmp_path / "w.safetensors")


def test_corrupt_weights_name_the_file(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(RunFolderError, match="w.safetensors"):
        load_weights(UNet(1, 2, 2, (4, 8)), path)
