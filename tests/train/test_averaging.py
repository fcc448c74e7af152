"""The moving average of the weights: its arithmetic, and a training that validates and saves
it (resuming it: tests/train/test_recipe.py)."""

import pytest
import torch
from torch import nn

from medseg.datasets.phantom import write_phantom_dataset
from medseg.train import LATEST_WEIGHTS, Plan, TrainOptions, load_weights, network_for, train_run
from medseg.train.averaging import ramped_decay, weight_average
from medseg.train.resume import load_training_state
from medseg.train.trainer import Trainer


def test_the_average_follows_the_ramped_decay_step_by_step():
    torch.manual_seed(0)
    network = nn.Linear(3, 2)
    average = weight_average(network, decay=0.2)
    expected = network.weight.detach().clone()  # the first update copies the weights
    average.update_parameters(network)
    for step in range(1, 6):
        with torch.no_grad():
            network.weight.add_(torch.randn_like(network.weight))
        d = ramped_decay(0.2, step)
        expected = d * expected + (1 - d) * network.weight.detach()
        average.update_parameters(network)
        torch.testing.assert_close(average.module.weight, expected)
    assert ramped_decay(0.2, 5) == 0.2 and ramped_decay(0.2, 1) == pytest.approx(2 / 11)
    assert not torch.equal(average.module.weight, network.weight)


def test_an_integer_buffer_is_copied_not_averaged():
    network = nn.BatchNorm1d(2)
    average = weight_average(network, decay=0.9)
    average.update_parameters(network)
    network.train()
    network(torch.randn(4, 2))
    network(torch.randn(4, 2))
    average.update_parameters(network)
    assert int(average.module.num_batches_tracked) == 2


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return write_phantom_dataset(
        tmp_path_factory.mktemp("phantom") / "ds", n_train=6, n_test=1, dim=2, shape=(40, 40)
    )


FAST = {"iterations_per_epoch": 3, "quiet": True, "settings": {"ema_decay": 0.9}}


@pytest.mark.slow
def test_training_saves_and_validates_the_average(phantom, tmp_path, monkeypatch):
    averages, networks = [], []
    original = Trainer.validation_step

    def recording(self):
        averages.append({k: v.clone() for k, v in self.average.module.state_dict().items()})
        networks.append({k: v.clone() for k, v in self.network.state_dict().items()})
        assert self.evaluated is self.average.module
        return original(self)

    monkeypatch.setattr(Trainer, "validation_step", recording)
    train_run(phantom, tmp_path / "run", TrainOptions(epochs=2, seed=1, **FAST))
    assert Plan.load(tmp_path / "run").ema_decay == 0.9
    saved = network_for(Plan.load(tmp_path / "run"))
    load_weights(saved, tmp_path / "run" / "fold_0" / LATEST_WEIGHTS)
    for name, value in saved.state_dict().items():
        torch.testing.assert_close(value, averages[-1][name], rtol=0, atol=0)
    assert any(not torch.equal(averages[-1][k], networks[-1][k]) for k in networks[-1])
    state = load_training_state(tmp_path / "run" / "fold_0")
    assert int(state["average"]["n_averaged"]) == 6  # one update per step
