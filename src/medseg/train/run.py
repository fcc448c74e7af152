"""From a dataset folder to a run folder: load cases, configure, train one fold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from medseg.datasets import (
    DatasetFolder,
    DatasetSpec,
    kfold_splits,
    open_dataset,
    read_training_case,
)
from medseg.device import resolve_device
from medseg.errors import ConfigError, located
from medseg.io import write_text_atomic
from medseg.preprocess import compute_fingerprint, preprocess_dataset, zscore
from medseg.progress import log_line, make_progress
from medseg.runs import DEFAULT_LEARNING_RATE, PLAN_FILE, Plan, apply_overrides, record_fold
from medseg.train.planner import make_plan
from medseg.train.resume import STATE_FILE
from medseg.train.sampler import TrainingCase
from medseg.train.trainer import Trainer, TrainResult
from medseg.train.transfer import find_weights

DEFAULT_EPOCHS = 100
_NEEDS_EPOCHS = (
    "--deterministic needs --epochs: a time budget makes the number of steps depend on the "
    "machine's speed"
)


def _class_lookup(label_values: list[int]) -> np.ndarray:
    """A table from label value to network class index (0 .. K-1)."""
    lookup = np.zeros(max(label_values) + 1, dtype=np.uint8)
    lookup[label_values] = np.arange(len(label_values))
    return lookup


def load_cases(
    dataset: DatasetFolder, quiet: bool = False
) -> tuple[list[TrainingCase], list[tuple[int, ...]], list[tuple[float, ...]]]:
    """Read, check and normalise every training case; also return shapes and spacings."""
    spec = dataset.spec
    lookup = _class_lookup(spec.label_values)
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


def plan_for_run(
    dataset: DatasetFolder,
    run_dir: Path,
    *,
    plan_file: Path | None,
    dim: int | None,
    model: str | None,
    minutes: float | None,
    device: torch.device,
    memory_gb: float | None,
    quiet: bool,
    overrides: dict[str, object],
    epochs: int | None = None,
) -> Plan:
    """The run's plan: the run folder's own (a further fold), else ``plan_file``, else a new
    one from the dataset's fingerprint (both saved into the run folder)."""
    if (run_dir / PLAN_FILE).exists():
        plan = Plan.load(run_dir)
        _check_same_run(plan, run_dir, dataset.spec, dim, model, overrides)
        return plan
    if plan_file is not None:
        return Plan.read(plan_file)
    fingerprint = compute_fingerprint(dataset, quiet=quiet)
    fingerprint.save(run_dir / "fingerprint.json")
    per_epoch = overrides.get("iterations_per_epoch") or 100
    planned_steps = (epochs or DEFAULT_EPOCHS) * int(per_epoch)  # type: ignore[call-overload]
    return make_plan(
        fingerprint,
        dataset.spec,
        dim=dim,
        model=model or "unet",
        device=device,
        budget_minutes=minutes,
        memory_gb=memory_gb,
        quiet=quiet,
        planned_steps=None if minutes is not None else planned_steps,
        **overrides,
    )


#: Preprocessed cases up to this size are read into memory; larger caches are memory-mapped.
_IN_MEMORY_BYTES = 4 * 2**30


def load_preprocessed(
    dataset: DatasetFolder, plan: Plan, cache_dir: Path, quiet: bool = False
) -> list[TrainingCase]:
    """Every training case through the plan's preprocessing (cached in ``cache_dir``)."""
    assert plan.preprocessing is not None
    cached = preprocess_dataset(dataset, plan.preprocessing, cache_dir, quiet=quiet)
    lookup = _class_lookup(plan.label_values)
    total = sum(c.image_path.stat().st_size for c in cached)
    sources = {c.case_id: c for c in dataset.training}
    cases = []
    for case in cached:
        image, label = case.load(mmap=total > _IN_MEMORY_BYTES)
        cases.append(
            TrainingCase(
                case.case_id,
                image,
                lookup[label],
                case.geometry.grid_affine,
                case.geometry,
                sources[case.case_id].label_path,
            )
        )
    return cases


def _prepare(
    dataset: DatasetFolder,
    run_dir: Path,
    plan_file: str | Path | None,
    dim: int | None,
    model: str | None,
    epochs: int | None,
    minutes: float | None,
    seed: int,
    fold: int,
    device: torch.device,
    memory_gb: float | None,
    quiet: bool,
    settings: dict[str, object],
    cache_dir: str | Path | None,
    overrides: dict[str, object],
) -> tuple[Plan, list[TrainingCase]]:
    """The run's plan (budget and overrides applied) and its preprocessed training cases;
    checks that fold ``fold`` exists."""
    spec = dataset.spec
    plan = plan_for_run(
        dataset,
        run_dir,
        plan_file=Path(plan_file) if plan_file is not None else None,
        dim=dim,
        model=model,
        minutes=minutes,
        device=device,
        memory_gb=memory_gb,
        quiet=quiet,
        overrides=overrides,
        epochs=epochs,
    )
    update: dict[str, object] = {"seed": seed}
    if epochs is not None or minutes is not None:
        update.update(epochs=epochs, minutes=minutes)
    elif plan.epochs is None and plan.minutes is None:
        update["epochs"] = DEFAULT_EPOCHS
    given = {k: v for k, v in overrides.items() if v is not None}
    if "optimizer" in given and "learning_rate" not in given:
        given["learning_rate"] = DEFAULT_LEARNING_RATE[str(given["optimizer"])]
    plan = apply_overrides(plan.model_copy(update={**update, **given}), settings)
    if spec.label_values != plan.label_values or spec.num_channels != plan.in_channels:
        raise ConfigError(located(dataset.root, "the plan was made for other labels or channels"))
    if not 0 <= fold < plan.n_folds:
        raise ConfigError(f"--fold {fold}: expected 0 to {plan.n_folds - 1}")
    if plan.preprocessing is None:
        cases, _, _ = load_cases(dataset, quiet)
    else:
        cache = Path(cache_dir) if cache_dir is not None else run_dir / "preprocessed"
        cases = load_preprocessed(dataset, plan, cache, quiet)
    if len(cases) < plan.n_folds:
        raise ConfigError(
            located(dataset.root, f"{len(cases)} cases are too few for {plan.n_folds} folds")
        )
    return plan, cases


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
    plan_file: str | Path | None = None,
    settings: dict[str, object] | None = None,
    cache_dir: str | Path | None = None,
    memory_gb: float | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    freeze_encoder: bool = False,
    deterministic: bool = False,
    **overrides: object,
) -> TrainResult:
    """Train fold ``fold`` of a dataset into ``run_dir``.

    The first fold trained in a run folder fixes its plan (``plan.json``: from ``plan_file``,
    else planned from the dataset's fingerprint for this device and the ``minutes`` budget);
    later folds reuse it, so every fold of a run has the same preprocessing, network and
    patch size. ``settings`` overrides any plan field (dotted names for nested ones). The
    budget is ``epochs`` or ``minutes`` per fold (default: the plan's, else 100 epochs).
    Training reads the cases from the preprocessed cache (``cache_dir``, default
    ``run_dir/preprocessed``), made once.

    ``resume`` continues the fold from its last saved epoch (a fold with nothing saved yet
    starts afresh); a larger budget extends a finished fold. ``init_from`` starts from
    another run's weights (every tensor that fits), ``freeze_encoder`` then trains the
    decoder only. ``deterministic`` makes the run bit-identical for a seed on the same machine
    and thread count (it needs an epoch budget).

    Examples
    --------
    >>> result = train_run("Dataset004_Hippocampus", "runs/hippo", minutes=10)  # doctest: +SKIP
    """
    if epochs is not None and minutes is not None:
        raise ConfigError("give either --epochs or --minutes, not both")
    if freeze_encoder and init_from is None:
        raise ConfigError("--freeze-encoder needs --init-from")
    if deterministic and minutes is not None:
        raise ConfigError(_NEEDS_EPOCHS)
    if init_from is not None:
        find_weights(init_from)  # a wrong path fails before anything is written
    run_dir = Path(run_dir)
    fold_dir = run_dir / f"fold_{fold}"
    if not resume and (fold_dir / STATE_FILE).exists():
        raise ConfigError(
            located(fold_dir, "already trained; --resume continues it (or use another --out)")
        )
    torch_device = resolve_device(device)
    dataset = open_dataset(dataset_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        plan, cases = _prepare(
            dataset, run_dir, plan_file, dim, model, epochs, minutes, seed, fold, torch_device,
            memory_gb, quiet, settings or {}, cache_dir, overrides,
        )  # fmt: skip
        if deterministic and plan.epochs is None:  # the run folder's plan has minutes
            raise ConfigError(_NEEDS_EPOCHS)
    except BaseException:
        if created:  # a run that never started leaves nothing behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    torch.use_deterministic_algorithms(deterministic)
    folds = kfold_splits([c.case_id for c in cases], plan.n_folds)
    train_ids, val_ids = folds[fold]
    splits = [{"fold": k, "train": t, "validation": v} for k, (t, v) in enumerate(folds)]
    write_text_atomic(run_dir / "splits.json", json.dumps(splits, indent=1) + "\n")
    plan.save(run_dir)
    write_text_atomic(
        run_dir / "dataset.json", (dataset.root / "dataset.json").read_text(encoding="utf-8")
    )
    by_id = {c.case_id: c for c in cases}
    trainer = Trainer(
        plan,
        [by_id[i] for i in train_ids],
        [by_id[i] for i in val_ids],
        fold_dir,
        torch_device,
        quiet,
        init_from=init_from,
        freeze_encoder=freeze_encoder,
    )
    resumed = resume and (fold_dir / STATE_FILE).exists()
    if resumed:
        trainer.resume()
        log_line(f"fold {fold}: resuming after epoch {len(trainer.history)}", quiet)
    elif trainer.transfer is not None:
        log_line(trainer.transfer.summary(), quiet)
    result = trainer.fit()
    result.validation = trainer.predict_validation(fold_dir / "validation")
    record_fold(
        run_dir,
        dataset=dataset.root,
        device=torch_device,
        seed=seed,
        deterministic=deterministic,
        fold=fold,
        details=_fold_details(result, resumed),
    )
    return result


def _fold_details(result: TrainResult, resumed: bool) -> dict[str, object]:
    """The manifest's record of one fold."""
    history = result.history
    details: dict[str, object] = {
        "epochs": result.epochs,
        "iterations": history[-1].iterations if history else 0,
        "best_epoch": result.best_epoch,
        "best_smoothed_val_dice": result.best_val_dice,
        "seconds": round(result.seconds, 1),
        "seconds_drawing_patches": round(sum(r.data_seconds for r in history), 1),
        "seconds_in_steps": round(sum(r.step_seconds for r in history), 1),
        "seconds_validating": round(sum(r.validation_seconds for r in history), 1),
        "resumed": resumed,
    }
    if result.validation is not None:
        details["final_validation_mean_dice"] = result.validation.summary.get("mean_dice")
    if result.transfer is not None:
        t = result.transfer
        details["init_from"] = {
            "source": t.source,
            "loaded": len(t.loaded),
            "skipped": t.skipped,
            "reinitialised": t.reinitialised,
            "frozen_parameters": t.frozen,
        }
    return details
