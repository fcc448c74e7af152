"""Where the held-out search's early stop ends a recorded validation curve, under a given
fall: replays ``medseg.train.held_out``'s rule (``PATIENCE`` validations without a better
smoothed Dice, the last of them at least ``--decline`` under the best) on the ``log.csv`` of
finished searches, so a change of the rule can be judged on every curve already recorded.

Usage: python bench/search_stop.py RUN/fold_all_search/log.csv [...] [--decline 0 0.002]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from medseg.loop import early_stop_due
from medseg.train.held_out import DECLINE, PATIENCE


def smoothed_curve(log: Path) -> list[tuple[int, float, float]]:
    """(steps, smoothed validation Dice, learning rate) of each validated epoch."""
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    curve = []
    for row in rows:
        smoothed = float(row["val_dice_smoothed"] or "nan")
        if not math.isnan(smoothed):
            curve.append((int(row["iterations"]), smoothed, float(row["learning_rate"])))
    return curve


def stop(curve: list[tuple[int, float, float]], decline: float) -> tuple[float, int, int | None]:
    """The best smoothed Dice so far, its steps, and the steps of the validation that stops
    the search (None: it ran to its cap or its clock), as `Trainer` decides them."""
    best, best_steps, since = -math.inf, 0, []
    for steps, smoothed, _ in curve:
        if smoothed > best:
            best, best_steps, since = smoothed, steps, []
            continue
        since.append(smoothed)
        if early_stop_due(best, since, PATIENCE, decline):
            return best, best_steps, steps
    return best, best_steps, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--decline", nargs="+", type=float, default=[0.0, DECLINE])
    args = parser.parse_args()
    for log in args.logs:
        curve = smoothed_curve(log)
        if not curve:
            print(f"{log}: no validation")
            continue
        start_lr = curve[0][2]
        print(f"{log}: {len(curve)} validations, last at {curve[-1][0]} steps")
        for decline in args.decline:
            best, best_steps, stopped = stop(curve, decline)
            if stopped is None:
                print(f"  fall {decline}: runs to the end; best {best:.4f} at {best_steps}")
                continue
            at = next((s, lr) for n, s, lr in curve if n == stopped)
            print(f"  fall {decline}: stops at {stopped} ({best - at[0]:.4f} under the best "
                  f"{best:.4f} at {best_steps}; learning rate {at[1] / start_lr:.0%} of "
                  f"the first validation's)")  # fmt: skip


if __name__ == "__main__":
    main()
