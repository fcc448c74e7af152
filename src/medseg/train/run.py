"""From a dataset folder to a run folder: load cases, configure, train one fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medseg.datasets import (
    DatasetFolder,
    DatasetSpec,
    kfold_splits,
    open_dataset,
    read_training_case,
)
from medseg.errors import ConfigError, located
from medseg.io import write_text_atomic
from medseg.preprocess import zscore
from medseg.progress import make_progress
from medseg.train.device import resolve_device
from medseg.train.plan import PLAN_FILE, Plan, auto_config
from medseg.train.sampler import TrainingCase
from medseg.train.trainer import Trainer, TrainResult

DEFAULT_EPOCHS = 100


def load_cases(
    dataset: DatasetFolder, quiet: bool = False
) -> tuple[list[TrainingCase], list[tuple[int, ...]], list[tuple[float, ...]]]:
    """Read, check and normalise every training case; also return shapes and spacings."""
    spec = dataset.spec
    lookup = np.zeros(max(spec.label_values) + 1, dtype=np.uint8)
    lookup[spec.label_values] = np.arange(len(spec.label_values))
    cases, shapes, spacings = [], [], []
    with make_progress(quiet) as progress:
        for case in progress.track(dataset.training, description="reading cases"):
            image, label = read_training_case(case, spec)
            target = lookup[label]
            cases.append(TrainingCase(case.case_id, zscore(image.array), target, image.affine))
            shapes.append(image.spatial_shape)
            spacings.append(image.spacing)
    return cases, shapes, spacings


def _check_same_run(
    config: Plan,
    run_dir: Path,
    spec: DatasetSpec,
    dim: int | None,
    model: str | None,
    overrides: dict[str, object],
) -> None:
    """A further fold in an existing run folder must train the same network on the same data."""
    problems = []
    if dim and dim != config.dim:
        problems.append(f"it holds a {config.dim}D run")
    if model and model != config.model:
        problems.append(f"it holds a {config.model} run")
    patch = overrides.get("patch_size")
    if patch and list(patch) != config.patch_size:  # type: ignore[call-overload]
        problems.append(f"its patch size is {config.patch_size}")
    if spec.label_values != config.label_values or spec.num_channels != config.in_channels:
        problems.append("it was trained on a dataset with other labels or channels")
    if problems:
        raise ConfigError(located(run_dir, "; ".join(problems) + "; use another --out"))


def train_run(
    dataset_dir: str | Path,
    run_dir: str | Path,
    *,
    dim: int | None = None,
    model: str | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    fold: int = 0,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **overrides: object,
) -> TrainResult:
    """Train fold ``fold`` of a dataset into ``run_dir``.

    The first fold trained in a run folder fixes its configuration (``plan.json``); later
    folds reuse it, so every fold of a run has the same network and patch size. The budget is
    ``epochs`` or ``minutes`` (default: 100 epochs).

    Examples
    --------
    >>> result = train_run("Dataset004_Hippocampus", "runs/hippo", minutes=10)  # doctest: +SKIP
    """
    if epochs is not None and minutes is not None:
        raise ConfigError("give either --epochs or --minutes, not both")
    if epochs is None and minutes is None:
        epochs = DEFAULT_EPOCHS
    run_dir = Path(run_dir)
    torch_device = resolve_device(device)
    dataset = open_dataset(dataset_dir)
    spec = dataset.spec
    cases, shapes, spacings = load_cases(dataset, quiet)
    budget = {"epochs": epochs, "minutes": minutes, "seed": seed}
    if (run_dir / PLAN_FILE).exists():
        config = Plan.load(run_dir)
        _check_same_run(config, run_dir, spec, dim, model, overrides)
        config = config.model_copy(update={**budget, **overrides})
    else:
        config = auto_config(
            shapes=shapes,
            spacings=spacings,
            in_channels=spec.num_channels,
            label_values=spec.label_values,
            label_names=[
                {v: k for k, v in spec.labels.items()}[value] for value in spec.label_values
            ],
            channel_names=[spec.channel_names[str(i)] for i in range(spec.num_channels)],
            file_ending=spec.file_ending,
            dim=dim,
            model=model or "unet",
            device_type=torch_device.type,
            **budget,
            **overrides,
        )
    config = Plan.model_validate(config.model_dump())
    if not 0 <= fold < config.n_folds:
        raise ConfigError(f"--fold {fold}: expected 0 to {config.n_folds - 1}")
    if len(cases) < config.n_folds:
        raise ConfigError(
            located(dataset.root, f"{len(cases)} cases are too few for {config.n_folds} folds")
        )
    folds = kfold_splits([c.case_id for c in cases], config.n_folds)
    train_ids, val_ids = folds[fold]
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = [{"fold": k, "train": t, "validation": v} for k, (t, v) in enumerate(folds)]
    write_text_atomic(run_dir / "splits.json", json.dumps(splits, indent=1) + "\n")
    config.save(run_dir)
    write_text_atomic(
        run_dir / "dataset.json", (dataset.root / "dataset.json").read_text(encoding="utf-8")
    )
    by_id = {c.case_id: c for c in cases}
    trainer = Trainer(
        config,
        [by_id[i] for i in train_ids],
        [by_id[i] for i in val_ids],
        run_dir / f"fold_{fold}",
        torch_device,
        quiet,
    )
    result = trainer.fit()
    result.validation = trainer.predict_validation(trainer.fold_dir / "validation")
    return result
