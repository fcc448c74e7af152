"""Benchmark: accuracy per CPU-minute — medseg's default recipe against a plain MONAI baseline.

Both train on the same cases for the same wall-clock minutes, one after the other in one
process, and both are scored on the same held-out cases by the same code
(`medseg.metrics.score_case`, on each case's own grid against its own label file).

Two set-ups:
- ``--fold K`` (default 0): the dataset's fold K (nnU-Net's split since 2026-12-03: results
  recorded before that date used medseg's earlier shuffle, so another 40 held-out cases);
  both train on its training cases and are scored on its validation cases.
- ``--train-cases N --test-cases M``: N + M cases drawn at random (``--subset-seed``) from the
  dataset; both learn from the N and are scored on the M others, as a new user with N
  labelled cases would be. medseg trains as ``medseg train`` does by default (``--medseg-fold
  all``: one model on every case, no validation hold-out) or on one fold of the N
  (``--medseg-fold 0``), and predicts the M like ``medseg predict``.
- ``--train-subset N`` (with ``--fold K``): N cases drawn at random (``--subset-seed``) from
  fold K's training cases, scored on fold K's validation cases: the same test cases for
  every N, for a curve of Dice against the number of training cases. medseg trains as with
  ``--train-cases``.

- medseg: ``train_run(dataset, out, TrainOptions(minutes=M))`` with every default (plan timed
  on this CPU, preprocessing, and the recipe the planner picks for the budget and the number
  of cases). Planning and preprocessing run before the clock starts for training and are
  reported separately.
- MONAI baseline: ``monai.networks.nets.UNet`` (16-32-64-128-256 channels, 2 residual units),
  ``DiceCELoss``, Adam (1e-3), patches by ``RandCropByPosNegLabeld`` (1:1 foreground /
  background), light augmentation (random flips, intensity scaling and shift), per-image
  z-score of the non-zero voxels, medseg's patch size rounded up to a multiple of 16 (MONAI's
  UNet needs it) or ``--monai-patch``; predicted with ``sliding_window_inference`` (50 %
  overlap, Gaussian).

Usage: python bench/accuracy.py [--dataset DIR] [--minutes 5 10 30] [--fold 0] [--out DIR]
       python bench/accuracy.py --train-cases 40 --test-cases 40 --minutes 5 10 30
       python bench/accuracy.py --fold 0 --train-subset 80 --minutes 10   (fold 0's 40 scored)
       python bench/accuracy.py --dataset DIR --own-test-set     (imagesTs/labelsTs scored)
       ... --out DIR --reuse     (predict with the finished medseg runs in DIR, train MONAI)
       ... --monai-patch 32 32 32   (the baseline's own patch instead of medseg's, rounded)
       ... --monai-seed 1   (another seed for the baseline)
       ... --skip-monai --set 'features=[32,64,128,256]'   (medseg with a plan field set)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medseg.cli.arguments import add_settings

DATA = Path(os.environ.get("MEDSEG_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
DEFAULT = DATA / "Dataset004_Hippocampus"


def _dice_by_label(summary: dict) -> dict[str, float]:
    return {name: stats["mean_dice"] for name, stats in summary["labels"].items()}


def _empty_cases(summary: dict) -> dict[str, str]:
    """Per label: of the cases whose reference lacks it, how many got a prediction of it."""
    found = {}
    for name, stats in summary["labels"].items():
        wrong, empty = stats["empty_reference"], stats["empty_reference"] + stats["empty_both"]
        if empty:
            found[name] = f"{wrong}/{empty}"
    return found


def split_cases(dataset: Path, args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The training and the held-out case identifiers of the chosen set-up."""
    from medseg.datasets import kfold_splits, open_dataset

    ids = sorted(c.case_id for c in open_dataset(dataset).training)
    if args.train_subset is not None:
        train, test = kfold_splits(ids, 5)[args.fold]
        order = np.random.default_rng(args.subset_seed).permutation(len(train))
        return sorted(train[i] for i in order[: args.train_subset]), test
    if args.train_cases is None:
        return kfold_splits(ids, 5)[args.fold]
    order = np.random.default_rng(args.subset_seed).permutation(len(ids))
    chosen = [ids[i] for i in order[: args.train_cases + args.test_cases]]
    return sorted(chosen[: args.train_cases]), sorted(chosen[args.train_cases :])


def _test_files(dataset: Path, ids: list[str]) -> list[tuple[str, Path, Path]]:
    from medseg.datasets import open_dataset

    cases = {c.case_id: c for c in open_dataset(dataset).training}
    return [(i, cases[i].image_paths[0], cases[i].label_path) for i in ids]


def _own_test_set(dataset: Path) -> tuple[list[str], list[tuple[str, Path, Path]]]:
    """Every training case, and the (case, image, label) files of imagesTs/labelsTs."""
    from medseg.datasets import open_dataset

    spec = open_dataset(dataset)
    ending = spec.spec.file_ending
    tests = [
        (label.name.removesuffix(ending), dataset / "imagesTs" / label.name.replace(
            ending, f"_0000{ending}"), label)
        for label in sorted((dataset / "labelsTs").glob(f"*{ending}"))
    ]  # fmt: skip
    return sorted(c.case_id for c in spec.training), tests


def write_subset(dataset: Path, folder: Path, train_ids: list[str], test_ids: list[str]) -> Path:
    """A dataset folder (symlinks) with ``train_ids`` as training cases and ``test_ids`` in
    imagesTs/labelsTs."""
    from medseg.datasets import open_dataset

    source = open_dataset(dataset)
    cases = {c.case_id: c for c in source.training}
    ending = source.spec.file_ending
    for part, ids in (("Tr", train_ids), ("Ts", test_ids)):
        (folder / f"images{part}").mkdir(parents=True, exist_ok=True)
        (folder / f"labels{part}").mkdir(exist_ok=True)
        for case_id in ids:
            for image in cases[case_id].image_paths:
                link = folder / f"images{part}" / image.name
                if not link.exists():
                    link.symlink_to(image.resolve())
            link = folder / f"labels{part}" / f"{case_id}{ending}"
            if not link.exists():
                link.symlink_to(cases[case_id].label_path.resolve())
    spec = json.loads((dataset / "dataset.json").read_text())
    (folder / "dataset.json").write_text(json.dumps({**spec, "numTraining": len(train_ids)}))
    return folder


def run_medseg(
    dataset: Path,
    out: Path,
    minutes: float,
    fold: int | str,
    test_dir: Path | None,
    reuse: bool = False,
    settings: dict[str, object] | None = None,
) -> dict[str, object]:
    """Train with medseg's defaults; score the fold's validation cases, or with ``test_dir``
    (a dataset folder whose imagesTs/labelsTs hold the held-out cases) predict and score
    those. ``settings`` are plan fields set as with ``medseg train --set``."""
    from medseg.infer import predict_paths
    from medseg.metrics import evaluate_folders
    from medseg.train import Plan, TrainOptions, train_run

    start = time.perf_counter()
    log = out / f"fold_{fold}" / "log.csv"
    if reuse and log.exists() and test_dir is not None:  # a finished run of this script
        last = list(csv.DictReader(log.open()))[-1]
        seconds, steps = float(last["seconds"]), int(last["iterations"])
    else:
        result = train_run(
            dataset,
            out,
            TrainOptions(minutes=minutes, quiet=True, settings=settings or {}),
            fold=fold,
        )
        seconds, steps = result.seconds, result.history[-1].iterations
    total = time.perf_counter() - start
    if test_dir is None:
        assert result.validation is not None
        summary = result.validation.summary  # the fold's models averaged, where it has more
        if result.members:
            folds = json.loads((out / "manifest.json").read_text())["folds"]
            first = folds[str(fold)]["first_model_validation_mean_dice"]
            names = [m.name for m in result.members]
            print(f"medseg's first model alone: mean Dice {first:.4f}; further models: {names}")
    else:
        predictions = out / "test_predictions"
        predict_paths(out, [test_dir / "imagesTs"], predictions, quiet=True)
        summary = evaluate_folders(predictions, test_dir / "labelsTs", quiet=True).summary
        models = sorted(p.name for p in out.glob(f"fold_{fold}*") if p.is_dir())
        if len(models) > 1:  # the capped budget's ensemble: the first model alone too
            first = out / "test_predictions_first_model"
            predict_paths(out, [test_dir / "imagesTs"], first, quiet=True, folds=[fold])
            alone = evaluate_folders(first, test_dir / "labelsTs", quiet=True).summary
            print(f"medseg's first model alone: {_dice_by_label(alone)}; models: {models}")
    plan = Plan.load(out)
    return {
        "dice": _dice_by_label(summary),
        "false_positive_empty_cases": _empty_cases(summary),
        "training_seconds": seconds,
        "total_seconds": total,
        "steps": steps,
        "patch_size": plan.patch_size,
        "recipe": next(d.reason for d in plan.decisions if d.setting == "recipe"),
        "settings": settings or {},
    }


def run_monai(
    dataset: Path,
    minutes: float,
    train_ids: list[str],
    tests: list[tuple[str, Path, Path]],
    patch: list[int],
    seed: int = 0,
) -> dict[str, object]:
    """Train the baseline on ``train_ids`` and score it on ``tests`` (case, image, label)."""
    from monai.data import PILReader
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

    from medseg.datasets import open_dataset
    from medseg.io import read_image
    from medseg.metrics import score_case, summarise

    spec = open_dataset(dataset)
    cases = {c.case_id: c for c in spec.training}
    labels = spec.spec.label_values
    dims = len(patch)
    keys = ["image", "label"]
    # MONAI reads PNG as (width, height); medseg and the label files scored here are (rows,
    # columns): without this the 2D predictions come out transposed
    reader = PILReader(reverse_indexing=False) if spec.spec.file_ending == ".png" else None
    load = Compose(
        [LoadImaged(keys=keys, reader=reader), EnsureChannelFirstd(keys=keys),
         NormalizeIntensityd(keys="image", nonzero=True)]
    )  # fmt: skip
    load_image = Compose(
        [LoadImaged(keys="image", reader=reader), EnsureChannelFirstd(keys="image"),
         NormalizeIntensityd(keys="image", nonzero=True)]
    )  # fmt: skip
    start = time.perf_counter()
    train_data = [
        load({"image": str(cases[i].image_paths[0]), "label": str(cases[i].label_path)})
        for i in train_ids
    ]
    augment = Compose(
        [
            SpatialPadd(keys=keys, spatial_size=patch),
            RandCropByPosNegLabeld(
                keys=keys, label_key="label", spatial_size=patch, pos=1, neg=1, num_samples=2,
            ),
            *[RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(dims)],
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
        ]
    )  # fmt: skip
    torch.manual_seed(seed)
    augment.set_random_state(seed)
    network = UNet(dims, 1, len(labels), (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(network.parameters(), 1e-3)
    rng = np.random.default_rng(seed)
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
        for case_id, image_path, label_path in tests:
            data = load_image({"image": str(image_path)})
            image = torch.as_tensor(data["image"])[None].float()
            logits = sliding_window_inference(
                image, patch, 4, network, overlap=0.5, mode="gaussian"
            )
            prediction = logits.argmax(1)[0].numpy().astype(np.uint8)
            reference = read_image(label_path)
            scores = score_case(
                case_id, reference.array[0], prediction, labels[1:], names, reference.spacing
            )
            rows += scores.metrics
    summary = summarise(rows, labels[1:], names, len(tests))
    return {
        "dice": _dice_by_label(summary),
        "false_positive_empty_cases": _empty_cases(summary),
        "training_seconds": training_seconds,
        "total_seconds": time.perf_counter() - start,
        "steps": steps,
    }


def _print(minutes: float, result: dict) -> None:
    ours, peer = result["medseg"], result["monai"]
    names = list(ours["dice"])
    print(f"\n{minutes:g} CPU-minutes of training")
    print(f"{'':8}" + "".join(f"{n:>12}" for n in names) + f"{'mean':>9}{'steps':>8}")
    for side in ("medseg", "monai"):
        dice = result[side]["dice"]
        mean = float(np.mean(list(dice.values())))
        print(
            f"{side:8}" + "".join(f"{dice[n]:12.4f}" for n in names)
            + f"{mean:9.4f}{result[side]['steps']:8d}"
        )  # fmt: skip
    gain = np.mean(list(ours["dice"].values())) - np.mean(list(peer["dice"].values()))
    print(f"patch: medseg {ours['patch_size']}, MONAI {peer['patch_size']}")
    if ours["false_positive_empty_cases"]:
        print(
            f"empty references predicted non-empty: medseg {ours['false_positive_empty_cases']}"
            f", MONAI {peer.get('false_positive_empty_cases')}"
        )
    print(f"medseg recipe: {ours['recipe']}")
    if ours["settings"]:
        print(f"medseg settings: {ours['settings']}")
    print(f"medseg - MONAI, mean Dice: {gain:+.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0])
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--train-cases", type=int, help="learn from N random cases")
    parser.add_argument("--test-cases", type=int, default=40, help="score M other cases")
    parser.add_argument(
        "--train-subset", type=int, help="learn from N random cases of the fold's training cases"
    )
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--medseg-fold", default="all", help="with --train-cases: all or K")
    parser.add_argument(
        "--own-test-set",
        action="store_true",
        help="learn from every training case, score the dataset's imagesTs/labelsTs",
    )
    parser.add_argument("--skip-monai", action="store_true", help="medseg only")
    parser.add_argument("--monai-seed", type=int, default=0, help="the baseline's seed")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with test cases: predict with a finished medseg run in --out instead of training",
    )
    parser.add_argument("--out", type=Path, help="keep medseg's run folders here")
    add_settings(parser, "a plan field for medseg, as with medseg train --set (repeatable)")
    parser.add_argument(
        "--monai-patch",
        type=int,
        nargs="+",
        help="the baseline's patch (multiples of 16; default: medseg's, rounded up to 16)",
    )
    args = parser.parse_args()
    if args.train_subset is not None and args.train_subset < 1:
        parser.error("--train-subset: give a number of cases of at least 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="medseg_accuracy_"))
    train_ids, test_ids = split_cases(args.dataset, args)
    subset = fold = None
    tests = _test_files(args.dataset, test_ids)
    if args.own_test_set:
        dataset, fold, subset = args.dataset, "all", args.dataset
        train_ids, tests = _own_test_set(args.dataset)
        where = f"every training case ({len(train_ids)}), its imagesTs ({len(tests)})"
    elif args.train_cases is None and args.train_subset is None:
        dataset, fold = args.dataset, args.fold
        where = f"fold {args.fold}"
    else:
        subset = write_subset(args.dataset, out / "dataset", train_ids, test_ids)
        dataset, fold = (
            subset,
            args.medseg_fold if args.medseg_fold == "all" else int(args.medseg_fold),
        )
        where = f"{len(train_ids)} training cases, {len(test_ids)} test cases, medseg fold {fold}"
        if args.train_subset is not None:
            where += f" (drawn from fold {args.fold}; its validation cases are the test cases)"
    print(f"dataset {args.dataset.name}, {where}, torch threads {torch.get_num_threads()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results = []
    for minutes in args.minutes:
        ours = run_medseg(
            dataset,
            out / f"medseg_{minutes:g}min",
            minutes,
            fold,
            subset,
            args.reuse,
            dict(args.set),
        )
        # MONAI's UNet (4 strides of 2) needs sizes divisible by 16: medseg's patch rounded up
        patch = args.monai_patch or [16 * -(-int(n) // 16) for n in ours["patch_size"]]  # type: ignore[union-attr]
        if args.skip_monai:
            peer = {"dice": dict.fromkeys(ours["dice"], float("nan")), "steps": 0}
        else:
            peer = run_monai(args.dataset, minutes, train_ids, tests, patch, args.monai_seed)
        peer["patch_size"] = patch
        results.append({"minutes": minutes, "medseg": ours, "monai": peer})
        _print(minutes, results[-1])
        (out / "accuracy.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\nresults in {out / 'accuracy.json'}")


if __name__ == "__main__":
    main()
