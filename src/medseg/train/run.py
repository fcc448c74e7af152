"""From a dataset folder to a run folder: load cases, configure, train one fold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from medseg.datasets import DatasetFolder, kfold_splits, open_dataset, read_training_case
from medseg.errors import ConfigError, located
from medseg.io import write_text_atomic
from medseg.preprocess import zscore
from medseg.progress import make_progress
from medseg.train.config import CONFIG_FILE, RunConfig, auto_config
from medseg.train.device import resolve_device
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


def train_run(
    dataset_dir: str | Path,
    run_dir: str | Path,
    *,
    dim: int | None = None,
    model: str = "unet",
    epochs: int | None = None,
    minutes: float | None = None,
    fold: int = 0,
    seed: int = 0,
    device: str = "auto",
    quiet: bool = False,
    **overrides: object,
) -> TrainResult:
    """Train fold ``fold`` of a dataset into ``run_dir``.

    The first fold trained in a run folder fixes its configuration (``config.json``); later
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
    if (run_dir / CONFIG_FILE).exists():
        config = RunConfig.load(run_dir)
        if (dim and dim != config.dim) or model != config.model:
            raise ConfigError(
                located(run_dir, f"holds a {config.dim}D {config.model} run; use another --out")
            )
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
            model=model,
            device_type=torch_device.type,
            **budget,
            **overrides,
        )
    config = RunConfig.model_validate(config.model_dump())
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
    shutil.copyfile(dataset.root / "dataset.json", run_dir / "dataset.json")
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
