"""Progress output: live bars on a terminal, plain lines elsewhere, nothing with quiet."""

import io

import pytest
from rich.console import Console

import medseg.progress
from medseg.datasets.phantom import write_phantom_dataset
from medseg.train import TrainOptions, train_run


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=150), buffer


@pytest.mark.slow
@pytest.mark.parametrize("terminal", [True, False])
def test_training_reports_loss_dice_and_eta(tmp_path, monkeypatch, terminal):
    console, buffer = _console(terminal)
    monkeypatch.setattr(medseg.progress, "_console", console)
    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=2, shape=(32, 32))
    train_run(data, tmp_path / "run", TrainOptions(epochs=2, iterations_per_epoch=2))
    text = buffer.getvalue()
    if terminal:
        for word in ("fingerprint", "preprocessing", "training", "ETA", "loss", "val Dice"):
            assert word in text
    else:
        lines = [line for line in text.splitlines() if line.startswith("epoch ")]
        assert len(lines) == 2 and "val Dice" in lines[0]


def test_quiet_prints_nothing(monkeypatch):
    console, buffer = _console(True)
    monkeypatch.setattr(medseg.progress, "_console", console)
    with medseg.progress.make_progress(quiet=True) as progress:
        for _ in progress.track(range(3), description="work"):
            pass
    medseg.progress.log_line("hello", quiet=True)
    assert buffer.getvalue() == ""


def test_tasks_without_a_status_field_render(monkeypatch):
    console, buffer = _console(True)
    monkeypatch.setattr(medseg.progress, "_console", console)
    with medseg.progress.make_progress() as progress:
        for _ in progress.track(range(2), description="reading"):
            pass
    assert "reading" in buffer.getvalue()
