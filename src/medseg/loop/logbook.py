"""What a training loop records per epoch: ``log.csv`` and, for segmentation, ``curves.png``
and, when the optional ``tensorboard`` package is installed, TensorBoard event files."""

from __future__ import annotations

import csv
import io as text_io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medseg.io import atomic_path, write_text_atomic

LOG_FILE = "log.csv"
CURVES_FILE = "curves.png"

_HEADER = ["epoch", "iterations", "seconds", "learning_rate", "train_loss", "val_dice_mean"]
_TIMING = ["val_dice_smoothed", "data_seconds", "step_seconds", "validation_seconds"]


@dataclass
class EpochRecord:
    """One row of the training log."""

    epoch: int
    iterations: int
    seconds: float
    learning_rate: float
    train_loss: float
    val_dice_mean: float
    val_dice: dict[str, float] = field(default_factory=dict)
    # the moving average that picks the best epoch
    val_dice_smoothed: float = math.nan
    # where the epoch's time went: drawing and augmenting patches, training steps, validation
    data_seconds: float = 0.0
    step_seconds: float = 0.0
    validation_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for the resume state."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochRecord:
        """The inverse of `to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def log_text(history: Sequence[EpochRecord], label_names: Sequence[str]) -> str:
    """The CSV log: one row per epoch, a Dice column per foreground label.

    Examples
    --------
    >>> row = EpochRecord(1, 100, 12.5, 0.01, 0.8, 0.5, {"liver": 0.5})
    >>> log_text([row], ["liver"]).splitlines()[1]
    '1,100,12.5,0.01,0.8,0.5,0.5,nan,0,0,0'
    """
    rows = []
    for record in history:
        row = asdict(record)
        rows.append(
            [row[h] for h in _HEADER]
            + [record.val_dice.get(n, math.nan) for n in label_names]
            + [row[t] for t in _TIMING]
        )
    return table_text(_HEADER + [f"val_dice_{n}" for n in label_names] + _TIMING, rows)


def table_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV text: a header line, then one line per row, floats to six significant digits.

    Examples
    --------
    >>> table_text(["epoch", "loss"], [[1, 0.123456789], [2, 0.1]]).splitlines()
    ['epoch,loss', '1,0.123457', '2,0.1']
    """
    buffer = text_io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for values in rows:
        writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in values])
    return buffer.getvalue()


def plot_curves(history: Sequence[EpochRecord], path: Path) -> None:
    """``curves.png``: training loss, validation Dice (raw and smoothed) and learning rate
    against the epoch, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [r.epoch for r in history]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    axes[0].plot(epochs, [r.train_loss for r in history], color="tab:blue")
    axes[0].set_title("training loss")
    # a time budget validates some epochs only (`validation_due`): draw those
    validated = [r for r in history if r.val_dice]
    validated_epochs = [r.epoch for r in validated]
    axes[1].plot(validated_epochs, [r.val_dice_mean for r in validated], "o-", ms=3,
                 label="mean Dice")  # fmt: skip
    axes[1].plot(validated_epochs, [r.val_dice_smoothed for r in validated],
                 label="moving average")  # fmt: skip
    axes[1].set_title("validation Dice")
    axes[1].legend(loc="lower right", fontsize=8)
    axes[2].plot(epochs, [r.learning_rate for r in history], color="tab:green")
    axes[2].set_title("learning rate")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)


class TensorBoardWriter:
    """Scalars per epoch into TensorBoard event files, or nothing when ``tensorboard`` is not
    installed (``pip install medseg[tensorboard]``)."""

    def __init__(self, log_dir: Path, enabled: bool = True) -> None:
        self._writer = None
        if not enabled:  # e.g. a rank other than 0 of a distributed run
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra is not installed
            return
        self._writer = SummaryWriter(str(log_dir))

    @property
    def active(self) -> bool:
        """Whether events are being written."""
        return self._writer is not None

    def add(self, record: EpochRecord) -> None:
        """Write one epoch's scalars."""
        if self._writer is None:
            return
        step = record.iterations
        self._writer.add_scalar("loss/train", record.train_loss, step)
        if record.val_dice:  # an epoch that validated
            self._writer.add_scalar("dice/validation_mean", record.val_dice_mean, step)
            self._writer.add_scalar("dice/validation_smoothed", record.val_dice_smoothed, step)
            for name, value in record.val_dice.items():
                self._writer.add_scalar(f"dice/{name}", value, step)
        self._writer.add_scalar("learning_rate", record.learning_rate, step)
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()


def write_logs(history: Sequence[EpochRecord], label_names: Sequence[str], fold_dir: Path) -> None:
    """Rewrite ``log.csv`` and ``curves.png`` in ``fold_dir``."""
    write_text_atomic(fold_dir / LOG_FILE, log_text(history, label_names))
    if history:
        plot_curves(history, fold_dir / CURVES_FILE)


def write_log_rows(directory: Path, rows: Sequence[Mapping[str, object]]) -> None:
    """Rewrite ``log.csv`` in ``directory`` from one mapping of named values per epoch (a loop
    without `EpochRecord`, such as registration training); the columns are the last row's
    keys, a value a row lacks is left empty.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_log_rows(Path(folder), [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    ...     print((Path(folder) / LOG_FILE).read_text(), end="")
    epoch,loss
    1,0.5
    2,0.25
    """
    columns = list(rows[-1])
    values = ([row.get(column, "") for column in columns] for row in rows)
    write_text_atomic(directory / LOG_FILE, table_text(columns, values))
