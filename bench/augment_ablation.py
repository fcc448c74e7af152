"""Ablation: what each augmentation transform alone costs or gains at a fixed number of steps.

Every arm trains the same network on the same fold (medseg's default plan for the dataset
without a time budget: the CPU default network, AdamW at 3e-3, deep supervision, poly decay)
for the same number of steps, with one transform group switched on at nnU-Net's probability
and every other one off; "none" has augmentation off, "all" nnU-Net v2's full default
recipe. Each arm is scored on the fold's validation cases by `medseg predict`'s path (final
validation, best weights). A fixed step count makes the result independent of the machine's
speed and load; the arms run one after the other in this process.

With ``--train-cases N``, every arm learns from N random cases (all of them, no hold-out) and
is scored on ``--test-cases`` others (the set-up of bench/accuracy.py).

Usage: python bench/augment_ablation.py [--dataset DIR] [--steps 1000] [--seeds 0]
       [--arms none all mirror ...] [--out DIR] [--train-cases N [--test-cases M]]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DATA = Path(os.environ.get("MEDSEG_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data"))

INTENSITY = ["noise", "blur", "brightness", "contrast", "low_resolution", "inverted_gamma", "gamma"]
SPATIAL = ["rotation", "scaling", "translation", "elastic", "mirror"]

#: Each arm: the transforms it switches on (at the default probability unless given).
ARMS: dict[str, dict[str, float | None]] = {
    "none": {},
    "all": {name: None for name in SPATIAL + INTENSITY if name not in ("translation", "elastic")},
    "mirror": {"mirror": None},
    "rotation+scaling": {"rotation": None, "scaling": None},
    "elastic": {"elastic": 0.2},
    "gamma": {"gamma": None, "inverted_gamma": None},
    "noise": {"noise": None},
    "blur": {"blur": None},
    "low_resolution": {"low_resolution": None},
    "brightness+contrast": {"brightness": None, "contrast": None},
    # what the MONAI baseline does, in nnU-Net's transforms: mirroring and intensity jitter
    "light": {"mirror": None, "brightness": None, "contrast": None, "gamma": None, "noise": None},
}


def arm_settings(arm: str) -> dict[str, object]:
    """``--set`` style plan settings for one arm."""
    from medseg.augment import AugmentationSettings

    if arm == "none":
        return {"augmentation.enabled": False}
    defaults = AugmentationSettings()
    settings: dict[str, object] = {"augmentation.enabled": True}
    for name in SPATIAL + INTENSITY:
        chosen = ARMS[arm]
        if name in chosen:
            given = chosen[name]
            probability = getattr(defaults, name).probability if given is None else given
        else:
            probability = 0.0
        settings[f"augmentation.{name}.probability"] = probability
    return settings


def run_arm(
    dataset: Path,
    out: Path,
    arm: str,
    steps: int,
    seed: int,
    fold: int | str = 0,
    patch_size: list[int] | None = None,
) -> dict[str, object]:
    """Train one arm; score the fold's validation cases, or for fold ``all`` (a dataset
    written by `accuracy.write_subset`) predict and score its imagesTs/labelsTs."""
    from medseg.infer import predict_paths
    from medseg.metrics import evaluate_folders
    from medseg.train import TrainOptions, train_run

    options = TrainOptions(
        epochs=steps // 100,
        iterations_per_epoch=100,
        seed=seed,
        quiet=True,
        optimizer="adamw",
        patch_size=patch_size,
        settings=arm_settings(arm),
    )
    start = time.perf_counter()
    run = out / f"{arm}_seed{seed}"
    result = train_run(dataset, run, options, fold=fold)
    if result.validation is not None:
        summary = result.validation.summary
    else:
        predict_paths(run, [dataset / "imagesTs"], run / "test_predictions", quiet=True)
        summary = evaluate_folders(run / "test_predictions", dataset / "labelsTs").summary
    labels = {
        name: round(row["metrics"]["dice"]["mean"], 4) for name, row in summary["labels"].items()
    }
    return {
        "arm": arm,
        "seed": seed,
        "steps": result.history[-1].iterations,
        "dice": labels,
        "mean_dice": round(summary["mean_dice"], 4),
        "best_smoothed_val_dice": round(result.best_val_dice, 4),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DATA / "Dataset004_Hippocampus")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=Path("/tmp/medseg_augment_ablation"))
    parser.add_argument("--patch-size", type=int, nargs="+", help="instead of the plan's")
    parser.add_argument("--train-cases", type=int, help="learn from N random cases (all of them)")
    parser.add_argument("--test-cases", type=int, default=40, help="and score M others")
    args = parser.parse_args()
    dataset, fold = args.dataset, 0
    if args.train_cases is not None:
        from accuracy import split_cases, write_subset

        args.fold, args.subset_seed = 0, 0
        train_ids, test_ids = split_cases(args.dataset, args)
        dataset = write_subset(args.dataset, args.out / "dataset", train_ids, test_ids)
        fold = "all"
        print(f"{len(train_ids)} training cases (every one), {len(test_ids)} test cases")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            row = run_arm(dataset, args.out, arm, args.steps, seed, fold, args.patch_size)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'arm':22} {'seed':>4} {'mean Dice':>9}  per label")
    for row in rows:
        print(f"{row['arm']:22} {row['seed']:>4} {row['mean_dice']:>9.4f}  {row['dice']}")
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
