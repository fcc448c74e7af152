"""Registration training's options and its Ctrl-C, on a tiny phantom (seconds)."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.errors import ConfigError
from medseg.register import training
from medseg.register.learned import CONFIG_FILE, MODEL_FILE, load_learned_model
from medseg.register.training import RegistrationTrainingOptions, train_registration


def test_options_refuse_atlas_labels_without_an_atlas_and_two_budgets() -> None:
    with pytest.raises(ConfigError, match="^--atlas-labels needs --atlas$"):
        RegistrationTrainingOptions(atlas_labels="atlas_seg.nii.gz")
    with pytest.raises(ConfigError, match="either --epochs or --minutes"):
        RegistrationTrainingOptions(epochs=2, minutes=1.0)
    options = RegistrationTrainingOptions(atlas="a.nii.gz", atlas_labels="a_seg.nii.gz")
    assert options.device == "auto" and options.epochs is None and options.minutes is None


def test_ctrl_c_is_taken_after_the_step_and_keeps_the_last_finished_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT in the first step of epoch 2: that step still finishes, then training stops
    with the model, registration.json and log.csv of epoch 1, nothing half-written."""
    dataset = write_phantom_dataset(
        tmp_path / "Dataset901_Tiny", n_train=10, n_test=0, shape=(24, 24, 8)
    )
    monkeypatch.setattr(training, "STEPS_PER_EPOCH", 2)
    finished_steps = []
    original_loss = training._step_loss

    def loss_with_ctrl_c(*args, **kwargs):
        if len(finished_steps) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # during the step, as a user would
        loss = original_loss(*args, **kwargs)
        finished_steps.append(float(loss.detach()))
        return loss

    monkeypatch.setattr(training, "_step_loss", loss_with_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "model"
    options = RegistrationTrainingOptions(epochs=3, device="cpu", quiet=True)
    with pytest.raises(KeyboardInterrupt):
        train_registration(dataset, out, options)
    assert len(finished_steps) == 3  # the interrupted step was not cut short
    assert signal.getsignal(signal.SIGINT) is before
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["training"]["epochs"] == 1 and config["training"]["steps"] == 2
    rows = list(csv.DictReader((out / "log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1]
    assert (out / MODEL_FILE).is_file() and load_learned_model(out).config.training["epochs"] == 1
    assert not list(out.glob(".*")), "a temporary file was left behind"
