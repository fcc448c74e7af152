"""Short real trainings on tiny phantoms (a few seconds each)."""

import numpy as np
import pytest
import torch

from medseg.datasets.phantom import write_phantom_dataset
from medseg.train import (
    BEST_WEIGHTS,
    LATEST_WEIGHTS,
    Plan,
    TrainOptions,
    load_weights,
    network_for,
    train_run,
)
from medseg.train.trainer import Trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory):
    return write_phantom_dataset(
        tmp_path_factory.mktemp("phantom") / "ds", n_train=8, n_test=1, dim=2, shape=(48, 48)
    )


def test_short_training_raises_validation_dice(tiny_phantom, tmp_path, monkeypatch):
    baseline = {}
    original_fit = Trainer.fit

    def fit_recording_the_untrained_score(self):
        baseline.update(self.validation_step())
        return original_fit(self)

    monkeypatch.setattr(Trainer, "fit", fit_recording_the_untrained_score)
    # float32 on every machine: with mixed precision the network would compute in bfloat16
    # only on CPUs that have it natively (AMX, AVX-512 BF16), so the same test would train a
    # different way from one CI machine to the next (bfloat16 is tested below)
    options = TrainOptions(
        epochs=6, iterations_per_epoch=20, quiet=True, seed=1, settings={"mixed_precision": False}
    )
    result = train_run(tiny_phantom, tmp_path / "run", options)
    untrained = float(np.nanmean(list(baseline.values())))
    best_raw = max(r.val_dice_mean for r in result.history)
    assert best_raw > untrained + 0.3
    assert best_raw > 0.6
    # the best epoch is chosen by the moving average, which lags the raw score
    assert result.best_val_dice > untrained + 0.2
    fold = tmp_path / "run" / "fold_0"
    assert (fold / BEST_WEIGHTS).is_file() and (fold / LATEST_WEIGHTS).is_file()
    log = (fold / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,iterations,seconds,learning_rate,train_loss,val_dice_mean")
    assert len(log) == 1 + 6
    config = Plan.load(tmp_path / "run")
    assert config.epochs == 6 and config.label_names[1:] == ["liver", "spleen", "kidney"]


def test_a_time_budget_stops_at_the_plans_step_cap(tiny_phantom, tmp_path):
    # 4 phantom steps take well under a second; without the cap the minute would run out
    # after far more than 4 steps, so a broken cap fails here instead of running long
    options = TrainOptions(
        minutes=1,
        iterations_per_epoch=2,
        quiet=True,
        settings={"max_iterations": 4, "max_members": 1},  # one model (test_ensemble: more)
    )
    result = train_run(tiny_phantom, tmp_path / "run", options)
    assert [r.iterations for r in result.history] == [2, 4]
    assert result.history[-1].learning_rate < result.history[0].learning_rate
    assert Plan.load(tmp_path / "run").max_iterations == 4
    assert result.members == []


class _Clock:
    """A stand-in for `time`: training steps take 5 s and validations 5 s, whatever the
    machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def test_a_time_budget_validates_within_its_share(tiny_phantom, tmp_path, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("medseg.loop.budget.time", clock)
    monkeypatch.setattr("medseg.train.trainer.time", clock)
    step, validate = Trainer.train_step, Trainer.validation_step

    def slow_step(self, image, target):
        clock.now += 5.0
        return step(self, image, target)

    def slow_validation(self):
        clock.now += 5.0
        return validate(self)

    monkeypatch.setattr(Trainer, "train_step", slow_step)
    monkeypatch.setattr(Trainer, "validation_step", slow_validation)
    # 2-step epochs (10 s) in a 3-minute budget; validating may take 20 % of the time spent
    options = TrainOptions(
        minutes=3, iterations_per_epoch=2, quiet=True, settings={"validation_share": 0.2}
    )
    result = train_run(tiny_phantom, tmp_path / "run", options)
    validated = [r.epoch for r in result.history if r.val_dice]
    epochs = len(result.history)
    seconds = [r.seconds for r in result.history]
    assert seconds[-1] <= 180  # the last epoch, validation included, fitted in the budget
    assert validated[0] == 1 and validated[-1] == epochs  # the first and the last epoch
    assert 4 <= len(validated) <= epochs - 4
    for count, epoch in enumerate(validated[1:-1], start=2):  # within the share, itself included
        assert 5 * count <= 0.2 * seconds[epoch - 1] + 1e-9
    skipped = [e for e in range(1, epochs) if e not in validated]
    for epoch in skipped:  # and skipped only where one more would have exceeded it
        count = sum(v < epoch for v in validated) + 1
        assert 5 * count > 0.2 * (seconds[epoch - 1] + 5)
    assert result.best_epoch in validated
    log = (tmp_path / "run" / "fold_0" / "log.csv").read_text().splitlines()
    assert len(log) == 1 + epochs and sum(",nan," in row for row in log[1:]) >= epochs - len(
        validated
    )


def test_same_seed_gives_identical_weights(tiny_phantom, tmp_path):
    for name in ("a", "b"):
        train_run(
            tiny_phantom,
            tmp_path / name,
            TrainOptions(epochs=1, iterations_per_epoch=3, quiet=True, seed=3),
        )
    config = Plan.load(tmp_path / "a")
    nets = []
    for name in ("a", "b"):
        net = network_for(config)
        load_weights(net, tmp_path / name / "fold_0" / LATEST_WEIGHTS)
        nets.append(net)
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(p, q)


def test_ctrl_c_keeps_a_usable_checkpoint(tiny_phantom, tmp_path, monkeypatch):
    calls = {"n": 0}
    original_step = Trainer.train_step

    def interrupted_step(self, image, target):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original_step(self, image, target)

    monkeypatch.setattr(Trainer, "train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train_run(
            tiny_phantom,
            tmp_path / "run",
            TrainOptions(epochs=3, iterations_per_epoch=3, quiet=True),
        )
    fold = tmp_path / "run" / "fold_0"
    assert not list(fold.glob(".*")), "a temporary file was left behind"
    from medseg.infer import load_trained_model

    model = load_trained_model(tmp_path / "run", device="cpu")
    assert len(model.networks) == 1


@pytest.mark.parametrize("model", ["fcn", "resunet"])
def test_other_networks_train_and_load_too(tiny_phantom, tmp_path, model):
    from medseg.infer import load_trained_model
    from medseg.nn.blocks import ResidualBlock

    result = train_run(
        tiny_phantom,
        tmp_path / "run",
        TrainOptions(model=model, epochs=1, iterations_per_epoch=2, quiet=True),
    )
    assert result.epochs == 1
    assert Plan.load(tmp_path / "run").model == model
    network = load_trained_model(tmp_path / "run", device="cpu").networks[0]
    residual = any(isinstance(m, ResidualBlock) for m in network.modules())
    assert residual == (model == "resunet")


def test_second_fold_reuses_the_run_and_refuses_another_network(tiny_phantom, tmp_path):
    from medseg.errors import ConfigError

    run = tmp_path / "run"
    train_run(
        tiny_phantom, run, TrainOptions(model="fcn", epochs=1, iterations_per_epoch=1, quiet=True)
    )
    # No --model given: the run folder's FCN is kept for fold 1.
    train_run(tiny_phantom, run, TrainOptions(epochs=1, iterations_per_epoch=1, quiet=True), fold=1)
    assert Plan.load(run).model == "fcn"
    assert (run / "fold_1" / BEST_WEIGHTS).is_file()
    with pytest.raises(ConfigError, match="holds a fcn run"):
        train_run(tiny_phantom, run, TrainOptions(model="unet", epochs=1, quiet=True), fold=2)
    with pytest.raises(ConfigError, match="holds a fcn run"):  # --set model=... as well
        options = TrainOptions(settings={"model": "resunet"}, epochs=1, quiet=True)
        train_run(tiny_phantom, run, options, fold=2)
    with pytest.raises(ConfigError, match="patch size"):
        train_run(
            tiny_phantom, run, TrainOptions(epochs=1, patch_size=[16, 16], quiet=True), fold=2
        )
    from medseg.infer import load_trained_model

    assert len(load_trained_model(run, device="cpu").networks) == 2


@pytest.mark.parametrize("mixed_precision", [True, False])
def test_mixed_precision_trains_in_bfloat16_on_a_cpu_with_it(
    tiny_phantom, tmp_path, monkeypatch, mixed_precision
):
    """With native bfloat16 (here pretended), mixed precision runs the network in bfloat16
    and keeps float32 weights and a float32 loss; without mixed precision all is float32."""
    from safetensors.torch import load_file

    from medseg import device as device_module

    monkeypatch.setattr(device_module, "native_bfloat16", lambda device: True)
    seen: set[torch.dtype] = set()
    original_fit = Trainer.fit

    def fit_watching_the_network(self):
        self.network.register_forward_hook(lambda m, args, out: seen.add(out[0].dtype))
        return original_fit(self)

    monkeypatch.setattr(Trainer, "fit", fit_watching_the_network)
    settings = {"mixed_precision": mixed_precision}
    options = TrainOptions(epochs=2, iterations_per_epoch=5, quiet=True, settings=settings)
    result = train_run(tiny_phantom, tmp_path / "run", options)
    assert seen == {torch.bfloat16 if mixed_precision else torch.float32}
    assert all(np.isfinite(r.train_loss) for r in result.history)
    stored = load_file(tmp_path / "run" / "fold_0" / LATEST_WEIGHTS)
    assert {t.dtype for t in stored.values() if t.is_floating_point()} == {torch.float32}
