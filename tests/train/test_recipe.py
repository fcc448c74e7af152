"""The Stage 4 recipe on tiny phantoms: resume, extension, determinism, cross-validation,
transfer learning, logs and the manifest."""

import json

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from medseg.datasets.phantom import write_phantom_dataset
from medseg.errors import ConfigError
from medseg.train import (
    BEST_WEIGHTS,
    LATEST_WEIGHTS,
    Plan,
    TrainOptions,
    load_weights,
    network_for,
    train_folds,
    train_run,
)
from medseg.train.resume import STATE_FILE
from medseg.train.trainer import Trainer
from medseg.train.transfer import freeze_encoder, load_compatible_weights

pytestmark = pytest.mark.slow

FAST = {"iterations_per_epoch": 3, "quiet": True}


@pytest.fixture(scope="module")
def tiny_phantom(tmp_path_factory):
    return write_phantom_dataset(
        tmp_path_factory.mktemp("phantom") / "ds", n_train=6, n_test=1, dim=2, shape=(40, 40)
    )


def _weights(run, name=LATEST_WEIGHTS, fold=0):
    net = network_for(Plan.load(run))
    load_weights(net, run / f"fold_{fold}" / name)
    return net.state_dict()


def _identical(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


@pytest.mark.parametrize("ema_decay", [None, 0.9], ids=["weights", "average"])
def test_resume_after_an_interruption_gives_the_uninterrupted_weights(
    tiny_phantom, tmp_path, monkeypatch, ema_decay
):
    options = {"epochs": 4, "seed": 5, "settings": {"ema_decay": ema_decay}, **FAST}
    train_run(tiny_phantom, tmp_path / "straight", TrainOptions(**options))

    calls = {"n": 0}
    original = Trainer.validation_step

    def interrupted_in_third_validation(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # after epoch 2's state was saved
        return original(self)

    monkeypatch.setattr(Trainer, "validation_step", interrupted_in_third_validation)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_phantom, tmp_path / "resumed", TrainOptions(**options))
    monkeypatch.setattr(Trainer, "validation_step", original)
    result = train_run(tiny_phantom, tmp_path / "resumed", TrainOptions(resume=True, **options))

    assert [r.epoch for r in result.history] == [1, 2, 3, 4]
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert _identical(straight, resumed)
    log = (tmp_path / "resumed/fold_0/log.csv").read_text().splitlines()
    assert len(log) == 1 + 4
    manifest = json.loads((tmp_path / "resumed/manifest.json").read_text())
    assert manifest["folds"]["0"]["resumed"] is True


def test_a_finished_run_is_extended_and_refuses_a_silent_restart(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    train_run(tiny_phantom, run, TrainOptions(epochs=2, **FAST))
    with pytest.raises(ConfigError, match="--resume"):
        train_run(tiny_phantom, run, TrainOptions(epochs=2, **FAST))
    result = train_run(tiny_phantom, run, TrainOptions(epochs=3, resume=True, **FAST))
    assert [r.epoch for r in result.history] == [1, 2, 3]
    assert result.history[-1].iterations == 9
    assert Plan.load(run).epochs == 3
    # resuming without a budget keeps the plan's: nothing left to train
    again = train_run(tiny_phantom, run, TrainOptions(resume=True, **FAST))
    assert again.epochs == 3


def test_deterministic_runs_are_bit_identical_and_need_epochs(tiny_phantom, tmp_path):
    for name in ("a", "b"):
        train_run(
            tiny_phantom,
            tmp_path / name,
            TrainOptions(epochs=2, seed=9, deterministic=True, **FAST),
        )
    assert _identical(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    with pytest.raises(ConfigError, match="--deterministic needs --epochs"):
        train_run(
            tiny_phantom, tmp_path / "c", TrainOptions(minutes=0.1, deterministic=True, **FAST)
        )
    assert not (tmp_path / "c").exists()
    torch.use_deterministic_algorithms(False)


def test_logs_curves_and_manifest(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    train_run(tiny_phantom, run, TrainOptions(epochs=2, seed=1, **FAST))
    fold = run / "fold_0"
    header = (fold / "log.csv").read_text().splitlines()[0].split(",")
    assert "val_dice_smoothed" in header and "learning_rate" in header
    with PILImage.open(fold / "curves.png") as png:
        assert png.size[0] > 600 and png.size[1] > 200
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["dataset"] == str(tiny_phantom.resolve())
    assert len(manifest["plan_sha256"]) == 64 and manifest["seed"] == 1
    assert manifest["environment"]["torch"] == torch.__version__
    entry = manifest["folds"]["0"]
    assert entry["epochs"] == 2 and entry["iterations"] == 6
    assert entry["seconds_in_steps"] > 0
    state = torch.load(fold / STATE_FILE, weights_only=True)
    assert state["iteration"] == 6 and len(state["history"]) == 2


def test_the_plan_holds_the_recipe_and_flags_change_it(tiny_phantom, tmp_path):
    # a short training gets AdamW, with augmentation on (planner decision)
    short = tmp_path / "short"
    train_run(tiny_phantom, short, TrainOptions(epochs=1, **FAST))
    plan = Plan.load(short)
    assert plan.optimizer == "adamw" and plan.learning_rate == pytest.approx(3e-3)
    assert plan.augmentation.enabled is True and plan.deep_supervision is True
    assert any(d.setting == "recipe" and "3 planned steps" in d.reason for d in plan.decisions)
    assert any(k.startswith("aux_heads") for k in _weights(short))
    # flags and --set win over the planner
    run = tmp_path / "run"
    settings = {"augmentation.enabled": False, "deep_supervision": False}
    train_run(tiny_phantom, run, TrainOptions(epochs=1, optimizer="sgd", settings=settings, **FAST))
    plan = Plan.load(run)
    assert plan.optimizer == "sgd" and plan.learning_rate == pytest.approx(1e-2)
    assert plan.augmentation.enabled is False and plan.deep_supervision is False
    assert not any(k.startswith("aux_heads") for k in _weights(run))


def test_long_trainings_get_nnunets_recipe_short_ones_keep_images_the_right_way_round():
    from medseg.augment import AugmentationSettings
    from medseg.train.recipe import (
        FULL_RECIPE_STEPS,
        SHORT_ELASTIC_PROBABILITY,
        SHORT_EMA_DECAY,
        recipe_for_steps,
    )

    long, decision = recipe_for_steps(FULL_RECIPE_STEPS)
    assert long == {"optimizer": "sgd", "learning_rate": 1e-2, "augmentation": {"enabled": True}}
    assert "nnU-Net" in decision.reason
    short, decision = recipe_for_steps(FULL_RECIPE_STEPS - 1)
    assert short["optimizer"] == "adamw" and "without mirroring" in decision.reason
    assert short["ema_decay"] == SHORT_EMA_DECAY and "moving average" in decision.reason
    nnunet = AugmentationSettings()
    assert short["augmentation"]["mirror"]["probability"] == 0 < nnunet.mirror.probability
    degrees = short["augmentation"]["rotation"]["in_plane_angle_degrees"]
    assert max(degrees) < max(nnunet.rotation.in_plane_angle_degrees)
    elastic = short["augmentation"]["elastic"]["probability"]
    assert elastic == SHORT_ELASTIC_PROBABILITY > nnunet.elastic.probability == 0
    assert "elastic" in decision.reason


def test_the_short_recipe_reaches_the_plan_and_set_overrides_it(tiny_phantom, tmp_path):
    run = tmp_path / "short"
    train_run(tiny_phantom, run, TrainOptions(epochs=1, **FAST))
    plan = Plan.load(run)
    assert plan.augmentation.mirror.probability == 0.0
    assert plan.augmentation.rotation.in_plane_angle_degrees == (-30.0, 30.0)
    assert plan.augmentation.elastic.probability == 0.2
    # the plan validates what the recipe changed: it reads back equal from its JSON
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    settings = {"augmentation.mirror.probability": 0.5}
    train_run(tiny_phantom, tmp_path / "mine", TrainOptions(epochs=1, settings=settings, **FAST))
    assert Plan.load(tmp_path / "mine").augmentation.mirror.probability == 0.5


def test_every_fold_and_the_cross_validation_summary(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    results = train_folds(tiny_phantom, run, TrainOptions(epochs=1, **FAST))
    assert [r.fold_dir.name for r in results] == [f"fold_{k}" for k in range(5)]
    predictions = sorted(p.name for p in (run / "cross_validation/predictions").iterdir())
    assert predictions == sorted(p.name for p in (tiny_phantom / "labelsTr").iterdir())
    summary = json.loads((run / "cross_validation/summary.json").read_text())
    assert summary["cases"] == 6
    manifest = json.loads((run / "manifest.json").read_text())
    assert sorted(manifest["folds"]) == ["0", "1", "2", "3", "4"]


def test_transfer_reports_what_fits_and_freezing_keeps_the_encoder(tiny_phantom, tmp_path):
    source = tmp_path / "source"
    train_run(tiny_phantom, source, TrainOptions(epochs=1, **FAST))
    plan = Plan.load(source)
    # the same network for two classes instead of four: only the output layers differ
    other = plan.model_copy(update={"label_values": [0, 1], "label_names": ["bg", "organ"]})
    network = network_for(other)
    report = load_compatible_weights(network, source)
    heads = sorted(n for n in network.state_dict() if "head" in n)
    assert sorted(report.reinitialised) == heads
    assert set(report.skipped) == set(heads)
    assert len(report.loaded) == len(network.state_dict()) - len(heads)
    trained = load_compatible_weights(network_for(plan), source)
    assert trained.reinitialised == [] and trained.skipped == {}

    fine = tmp_path / "fine"
    before = _weights(source, BEST_WEIGHTS)
    result = train_run(
        tiny_phantom,
        fine,
        TrainOptions(epochs=1, init_from=source, freeze_encoder=True, seed=4, **FAST),
    )
    assert result.transfer is not None and result.transfer.frozen > 0
    after = _weights(fine)
    encoder = [k for k in after if k.startswith("encoder.") and "weight" in k]
    decoder = [k for k in after if k.startswith("decoder.") and "weight" in k]
    assert all(torch.equal(before[k], after[k]) for k in encoder)
    assert any(not torch.equal(before[k], after[k]) for k in decoder)
    manifest = json.loads((fine / "manifest.json").read_text())
    assert manifest["folds"]["0"]["init_from"]["frozen_parameters"] == result.transfer.frozen
    with pytest.raises(ConfigError, match="needs --init-from"):
        train_run(tiny_phantom, tmp_path / "x", TrainOptions(epochs=1, freeze_encoder=True, **FAST))


def test_freeze_encoder_counts_parameters():
    plan_net = torch.nn.Module()
    with pytest.raises(ConfigError, match="no encoder"):
        freeze_encoder(plan_net)
    from medseg.nn import UNet

    net = UNet(1, 2, dim=2, features=(4, 8))
    count = freeze_encoder(net)
    assert count == sum(p.numel() for p in net.encoder.parameters())
    assert all(not p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for p in net.head.parameters())
    assert np.isfinite(count)


def test_fold_all_trains_on_every_case_without_validation(tiny_phantom, tmp_path):
    run = tmp_path / "run"
    result = train_run(tiny_phantom, run, TrainOptions(epochs=2, **FAST), fold="all")
    assert result.validation is None and result.best_epoch == 2
    fold = run / "fold_all"
    # without validation cases the model is the last epoch's
    assert _identical(_weights(run, BEST_WEIGHTS, "all"), _weights(run, LATEST_WEIGHTS, "all"))
    assert not (fold / "validation").exists()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["folds"]["all"]["epochs"] == 2
    assert len(json.loads((run / "splits.json").read_text())) == 5
