"""Where the held-out search's early stop ends a recorded validation curve, under a given
fall, and how long every case then trains: replays ``medseg.train.held_out``'s rules
(``PATIENCE`` validations without a better smoothed Dice, the last of them at least
``--decline`` under the best; then the best epoch's steps where the curve fell that far after
it, else the last epoch's) on the ``log.csv`` of finished searches, so a change of a rule can
be judged on every curve already recorded.

Usage: python bench/search_stop.py RUN/fold_all_search/log.csv [...] [--decline 0 0.002]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from medseg.loop import EpochRecord, early_stop_due
from medseg.train.held_out import DECLINE, PATIENCE, chosen_steps
from medseg.train.trainer import TrainResult


def read_history(log: Path) -> list[EpochRecord]:
    """The epochs of a search's log.csv (smoothed Dice nan where the epoch was not validated)."""
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    return [
        EpochRecord(
            int(row["epoch"]),
            int(row["iterations"]),
            float(row["seconds"]),
            float(row["learning_rate"]),
            float(row["train_loss"]),
            float(row["val_dice_mean"] or "nan"),
            val_dice_smoothed=float(row["val_dice_smoothed"] or "nan"),
        )
        for row in rows
    ]


def replay(history: list[EpochRecord], decline: float) -> tuple[TrainResult, bool]:
    """The search's result as `Trainer` would have ended it under ``decline`` (its history cut
    at the validation that stops it), and whether the early stop ended it."""
    best, best_epoch, since = -math.inf, 0, []
    for index, record in enumerate(history):
        smoothed = record.val_dice_smoothed
        if math.isnan(smoothed):
            continue
        if smoothed > best:
            best, best_epoch, since = smoothed, record.epoch, []
            continue
        since.append(smoothed)
        if early_stop_due(best, since, PATIENCE, decline):
            kept = history[: index + 1]
            return TrainResult(Path(), len(kept), best_epoch, best, 0.0, kept), True
    return TrainResult(Path(), len(history), best_epoch, best, 0.0, history), False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--decline", nargs="+", type=float, default=[0.0, DECLINE])
    args = parser.parse_args()
    for log in args.logs:
        history = read_history(log)
        validated = [r for r in history if not math.isnan(r.val_dice_smoothed)]
        if not validated:
            print(f"{log}: no validation")
            continue
        start_lr = validated[0].learning_rate
        print(f"{log}: {len(validated)} validations, last at {history[-1].iterations} steps")
        for decline in args.decline:
            result, stopped = replay(history, decline)
            best = result.best_val_dice
            best_at = next(r.iterations for r in history if r.epoch == result.best_epoch)
            end = result.history[-1]
            where = (
                f"stops at {end.iterations} ({best - end.val_dice_smoothed:.4f} under the best "
                f"{best:.4f} at {best_at}; learning rate {end.learning_rate / start_lr:.0%} of "
                "the first validation's)"
                if stopped
                else f"runs to the end; best {best:.4f} at {best_at}"
            )
            print(f"  fall {decline}: {where}; every case trains the search's "
                  f"{chosen_steps(result, decline)} steps, scaled")  # fmt: skip


if __name__ == "__main__":
    main()
