"""The training log: CSV, curves and TensorBoard events."""

import math
import sys

import pytest
from PIL import Image as PILImage

from medseg.loop.logbook import (
    CURVES_FILE,
    LOG_FILE,
    EpochRecord,
    TensorBoardWriter,
    log_text,
    write_log_rows,
    write_logs,
)


def _history(n):
    return [
        EpochRecord(e, 10 * e, 1.5 * e, 0.01 / e, 1.0 / e, 0.5 + 0.05 * e,
                    {"liver": 0.5 + 0.05 * e}, 0.4 + 0.05 * e, 0.1, 1.0, 0.2)
        for e in range(1, n + 1)
    ]  # fmt: skip


def test_log_and_curves_are_rewritten_each_epoch(tmp_path):
    history = _history(3)
    write_logs(history[:2], ["liver", "spleen"], tmp_path)
    write_logs(history, ["liver", "spleen"], tmp_path)
    rows = (tmp_path / LOG_FILE).read_text().splitlines()
    assert rows[0].split(",")[6:8] == ["val_dice_liver", "val_dice_spleen"]
    assert len(rows) == 4 and rows[3].split(",")[7] == "nan"  # spleen never scored
    with PILImage.open(tmp_path / CURVES_FILE) as png:
        png.verify()
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_records_round_trip_through_plain_values():
    record = _history(1)[0]
    assert EpochRecord.from_dict({**record.to_dict(), "unknown": 1}) == record
    assert math.isnan(EpochRecord(1, 1, 1.0, 0.1, 1.0, 0.5).val_dice_smoothed)
    assert log_text([], ["a"]).count("\n") == 1


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = TensorBoardWriter(tmp_path / "tb")
    assert writer.active
    for record in _history(3):
        writer.add(record)
    writer.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    dice = events.Scalars("dice/validation_mean")
    assert [e.step for e in dice] == [10, 20, 30]
    assert dice[-1].value == pytest.approx(0.65)
    assert "dice/liver" in events.Tags()["scalars"]


def test_tensorboard_is_optional(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    writer = TensorBoardWriter(tmp_path / "tb")
    assert not writer.active
    writer.add(_history(1)[0])
    writer.close()
    assert not (tmp_path / "tb").exists()


def test_rows_of_named_values_write_the_last_rows_columns(tmp_path):
    """Registration training's log: one mapping per epoch, floats to six digits."""
    rows = [
        {"epoch": 1, "steps": 50, "seconds": 20.0, "loss": 1 / 3, "dice_after": 0.75},
        {"epoch": 2, "steps": 100, "seconds": 41.5, "loss": 0.25, "dice_after": 0.8},
    ]
    write_log_rows(tmp_path, rows)
    lines = (tmp_path / LOG_FILE).read_text().splitlines()
    assert lines == [
        "epoch,steps,seconds,loss,dice_after",
        "1,50,20,0.333333,0.75",
        "2,100,41.5,0.25,0.8",
    ]
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"
