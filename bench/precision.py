"""Benchmark: prediction in float32 against bfloat16 (autocast) on a trained run's
validation cases — Dice per label, seconds, and how many voxels get another label.

Each precision loads the fold's network (`medseg.infer.load_trained_model(...,
precision=...)`) and predicts every validation case of that fold through the whole
``predict_image`` pipeline (preprocessing, sliding window, the way back; no TTA), one after
the other in this process, with the same threads. bfloat16 is what ``medseg predict`` uses
by default on a CPU with AMX or AVX-512 BF16; elsewhere it is emulated and slower.

Usage: python bench/precision.py RUN_DIR DATASET_DIR [--fold 0] [--threads 2]
  e.g. after ``medseg train Dataset004_Hippocampus --out runs/cv --cross-validation``:
  python bench/precision.py runs/cv ../shared/data/Dataset004_Hippocampus
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from medseg.device import native_bfloat16
from medseg.infer import load_trained_model
from medseg.infer.predict import predict_image
from medseg.io import read_image
from medseg.metrics import dice_per_label

PRECISIONS = ("float32", "bfloat16")


def validation_cases(run_dir: Path, fold: int) -> list[str]:
    """The case names fold ``fold`` of the run held out."""
    splits = json.loads((run_dir / "splits.json").read_text())
    return next(s["validation"] for s in splits if s["fold"] == fold)


def predict_all(
    run_dir: Path, data: Path, fold: int, cases: list[str], precision: str
) -> tuple[dict[str, np.ndarray], float]:
    """Every case's label map in ``precision``, and the seconds spent predicting."""
    model = load_trained_model(run_dir, "cpu", folds=[fold], precision=precision)
    ending = model.config.file_ending
    images = {c: read_image(data / "imagesTr" / f"{c}_0000{ending}") for c in cases}
    predict_image(model, images[cases[0]])  # warm-up: allocation, kernel selection
    labels, start = {}, time.perf_counter()
    for case, image in images.items():
        labels[case] = predict_image(model, image).array
    return labels, time.perf_counter() - start


def mean_dice(
    labels: dict[str, np.ndarray], references: dict[str, np.ndarray], values: list[int]
) -> dict[int, float]:
    """Mean Dice over the cases for each foreground label value (`medseg.metrics`; cases
    where both maps lack a label do not count)."""
    scores = [dice_per_label(references[case], labels[case], values) for case in labels]
    return {v: float(np.nanmean([s[v] for s in scores])) for v in values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = validation_cases(args.run_dir, args.fold)
    plan = json.loads((args.run_dir / "plan.json").read_text())
    ending = plan["file_ending"]
    references = {c: read_image(args.dataset / "labelsTr" / f"{c}{ending}").array for c in cases}
    values = plan["label_values"][1:]
    print(f"{len(cases)} validation cases of fold {args.fold}; {args.threads} threads; native "
          f"bfloat16 on this CPU: {native_bfloat16(torch.device('cpu'))}")  # fmt: skip
    maps, seconds = {}, {}
    for precision in PRECISIONS:
        maps[precision], seconds[precision] = predict_all(
            args.run_dir, args.dataset, args.fold, cases, precision
        )
        dice = mean_dice(maps[precision], references, values)
        print(f"{precision:9s} {seconds[precision]:6.2f} s  Dice "
              + " / ".join(f"{dice[v]:.4f}" for v in values))  # fmt: skip
    differ = np.mean([np.mean(maps["float32"][c] != maps["bfloat16"][c]) for c in cases])
    print(f"bfloat16 / float32 speed: {seconds['float32'] / seconds['bfloat16']:.2f}x; labels "
          f"differ in {100 * differ:.4f} % of voxels")  # fmt: skip


if __name__ == "__main__":
    main()
