"""Benchmark: accuracy per CPU-minute — medseg's default recipe against a plain MONAI baseline.

Both train on the same training cases of the same fold (medseg's case-wise split, seed 12345)
for the same wall-clock minutes, one after the other in one process, and both are scored on
the same validation cases by the same code (`medseg.metrics.score_case`, on each case's own
grid against its own label file).

- medseg: ``train_run(dataset, out, TrainOptions(minutes=M))`` with every default (plan timed
  on this CPU, preprocessing, deep supervision, poly decay, and the recipe the planner picks for the
  budget: AdamW without augmentation below 10,000 steps); its final validation
  is the prediction `medseg predict` would make. Planning and preprocessing run before the
  clock starts for training and are reported separately.
- MONAI baseline: ``monai.networks.nets.UNet`` (16-32-64-128-256 channels, 2 residual units),
  ``DiceCELoss``, Adam (1e-3), patches by ``RandCropByPosNegLabeld`` (1:1 foreground /
  background), light augmentation (random flips, intensity scaling and shift), per-image
  z-score of the non-zero voxels, medseg's patch size rounded up to a multiple of 16 (MONAI's
  UNet needs it); predicted with
  ``sliding_window_inference`` (50 % overlap, Gaussian) at the end.

Usage: python bench/accuracy.py [--dataset DIR] [--minutes 5 10 30] [--fold 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "Dataset004_Hippocampus"


def run_medseg(dataset: Path, out: Path, minutes: float, fold: int) -> dict[str, object]:
    from medseg.train import Plan, TrainOptions, train_run

    finished = finished_run(out, fold)
    if finished is not None:
        return finished
    start = time.perf_counter()
    result = train_run(dataset, out, TrainOptions(minutes=minutes, quiet=True), fold=fold)
    total = time.perf_counter() - start
    assert result.validation is not None
    plan = Plan.load(out)
    return {
        "dice": _dice_by_label(result.validation.summary),
        "training_seconds": result.seconds,
        "total_seconds": total,
        "steps": result.history[-1].iterations,
        "patch_size": plan.patch_size,
    }


def finished_run(out: Path, fold: int) -> dict[str, object] | None:
    """The numbers of a run folder this script finished before (``--out`` kept), so that a
    crash in a later step does not cost the training again."""
    from medseg.train import Plan

    summary = out / f"fold_{fold}" / "validation" / "summary.json"
    manifest = out / "manifest.json"
    if not summary.is_file() or not manifest.is_file():
        return None
    record = json.loads(manifest.read_text())["folds"][str(fold)]
    print(f"reusing the finished run in {out}")
    return {
        "dice": _dice_by_label(json.loads(summary.read_text())),
        "training_seconds": record["seconds"],
        "total_seconds": None,
        "steps": record["iterations"],
        "patch_size": Plan.load(out).patch_size,
    }


def _dice_by_label(summary: dict) -> dict[str, float]:
    return {name: stats["mean_dice"] for name, stats in summary["labels"].items()}


def run_monai(dataset: Path, minutes: float, fold: int, patch_size: list[int]) -> dict[str, object]:
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandScaleIntensityd,
        RandShiftIntensityd,
        SpatialPadd,
    )

    from medseg.datasets import kfold_splits, open_dataset
    from medseg.io import read_image
    from medseg.metrics import score_case, summarise

    spec = open_dataset(dataset)
    cases = {c.case_id: c for c in spec.training}
    train_ids, val_ids = kfold_splits(sorted(cases), 5)[fold]
    labels = spec.spec.label_values
    load = Compose(
        [
            LoadImaged(keys=["image", "label"]),
            EnsureChannelFirstd(keys=["image", "label"]),
            NormalizeIntensityd(keys="image", nonzero=True),
        ]
    )
    load_image = Compose(
        [
            LoadImaged(keys="image"),
            EnsureChannelFirstd(keys="image"),
            NormalizeIntensityd(keys="image", nonzero=True),
        ]
    )
    start = time.perf_counter()
    train_data = [
        load({"image": str(cases[i].image_paths[0]), "label": str(cases[i].label_path)})
        for i in train_ids
    ]
    augment = Compose(
        [
            SpatialPadd(keys=["image", "label"], spatial_size=patch_size),
            RandCropByPosNegLabeld(
                keys=["image", "label"], label_key="label", spatial_size=patch_size,
                pos=1, neg=1, num_samples=2,
            ),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1),
            RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=2),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )  # fmt: skip
    torch.manual_seed(0)
    augment.set_random_state(0)
    network = UNet(3, 1, len(labels), (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(network.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    steps = 0
    network.train()
    while time.perf_counter() - start < minutes * 60:
        patches = [p for i in rng.integers(len(train_data), size=1) for p in augment(train_data[i])]
        image = torch.stack([torch.as_tensor(p["image"]) for p in patches]).float()
        label = torch.stack([torch.as_tensor(p["label"]) for p in patches]).long()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(network(image), label)
        loss.backward()
        optimizer.step()
        steps += 1
    training_seconds = time.perf_counter() - start
    network.eval()
    rows = []
    names = {v: n for n, v in spec.spec.labels.items()}
    with torch.no_grad():
        for case_id in val_ids:
            data = load_image({"image": str(cases[case_id].image_paths[0])})
            image = torch.as_tensor(data["image"])[None].float()
            logits = sliding_window_inference(
                image, patch_size, 4, network, overlap=0.5, mode="gaussian"
            )
            prediction = logits.argmax(1)[0].numpy().astype(np.uint8)
            reference = read_image(cases[case_id].label_path)
            scores = score_case(
                case_id, reference.array[0], prediction, labels[1:], names, reference.spacing
            )
            rows += scores.metrics
    summary = summarise(rows, labels[1:], names, len(val_ids))
    return {
        "dice": _dice_by_label(summary),
        "training_seconds": training_seconds,
        "total_seconds": time.perf_counter() - start,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep medseg's run folders here")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="medseg_accuracy_"))
    print(f"dataset {args.dataset.name}, fold {args.fold}, torch threads {torch.get_num_threads()}")
    results = []
    for minutes in args.minutes:
        ours = run_medseg(args.dataset, out / f"medseg_{minutes:g}min", minutes, args.fold)
        # MONAI's UNet (4 strides of 2) needs sizes divisible by 16: medseg's patch rounded up
        patch = [16 * -(-int(n) // 16) for n in ours["patch_size"]]  # type: ignore[union-attr]
        peer = run_monai(args.dataset, minutes, args.fold, patch)
        peer["patch_size"] = patch
        results.append({"minutes": minutes, "medseg": ours, "monai": peer})
        names = list(ours["dice"])
        print(f"\n{minutes:g} CPU-minutes of training")
        print(f"{'':8}" + "".join(f"{n:>12}" for n in names) + f"{'mean':>9}{'steps':>8}")
        for side in ("medseg", "monai"):
            dice = results[-1][side]["dice"]
            mean = float(np.mean(list(dice.values())))
            print(
                f"{side:8}" + "".join(f"{dice[n]:12.4f}" for n in names)
                + f"{mean:9.4f}{results[-1][side]['steps']:8d}"
            )  # fmt: skip
        gain = np.mean(list(ours["dice"].values())) - np.mean(list(peer["dice"].values()))
        print(f"patch: medseg {ours['patch_size']}, MONAI {peer['patch_size']}")
        print(f"medseg - MONAI, mean Dice: {gain:+.4f}")
    (out / "accuracy.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults in {out / 'accuracy.json'}")


if __name__ == "__main__":
    main()
