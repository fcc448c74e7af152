"""From a dataset folder to a run folder: load cases, configure, train one fold."""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from medseg.datasets import (
    DatasetFolder,
    DatasetSpec,
    kfold_splits,
    open_dataset,
    read_splits,
    read_training_case,
)
from medseg.device import rank_device, resolve_device
from medseg.errors import ConfigError, RunFolderError, located
from medseg.folds import member_dirs
from medseg.io import read_json_file, write_text_atomic
from medseg.preprocess import preprocess_dataset, zscore
from medseg.progress import log_line, make_progress
from medseg.runs import PLAN_FILE, Plan, record_fold
from medseg.train import distributed, held_out
from medseg.train.ensemble import (
    capped_early,
    remove_members,
    train_members,
    validate_ensemble,
)
from medseg.train.held_out import Split
from medseg.train.options import NEEDS_EPOCHS, PlanOptions, TrainOptions
from medseg.train.plan_dataset import DEFAULT_EPOCHS, configure_plan, plan_dataset
from medseg.train.resume import STATE_FILE
from medseg.train.sampler import TrainingCase
from medseg.train.trainer import Trainer, TrainResult
from medseg.train.transfer import find_weights

#: The fold that trains on every case (nnU-Net's ``all``).
ALL_CASES = "all"
Fold = int | str


def load_cases(
    dataset: DatasetFolder, lookup: np.ndarray, quiet: bool = False
) -> tuple[list[TrainingCase], list[tuple[int, ...]], list[tuple[float, ...]]]:
    """Read, check and normalise every training case, its label turned into training
    classes by ``lookup`` (`Plan.class_lookup`); also return shapes and spacings."""
    spec = dataset.spec
    cases, shapes, spacings = [], [], []
    with make_progress(quiet) as progress:
        for case in progress.track(dataset.training, description="reading cases"):
            image, label = read_training_case(case, spec)
            target = lookup[label]
            cases.append(TrainingCase(case.case_id, zscore(image.array), target, image.affine))
            shapes.append(image.spatial_shape)
            spacings.append(image.spacing)
    return cases, shapes, spacings


def _same_labels(spec: DatasetSpec, plan: Plan) -> bool:
    """Whether a plan was made for a dataset's labels (the ignore label too) and channels."""
    regions = [r.labels for r in spec.regions] if spec.regions else None
    return (spec.label_values, spec.ignore_label, spec.num_channels, regions) == (
        plan.label_values, plan.ignore_label, plan.in_channels, plan.regions
    )  # fmt: skip


def _check_same_run(config: Plan, run_dir: Path, spec: DatasetSpec, options: PlanOptions) -> None:
    """A further fold in an existing run folder must train the same network on the same data."""
    problems = []
    if options.dim and options.dim != config.dim:
        problems.append(f"it holds a {config.dim}D run")
    model = options.named_model
    if model and model != config.model:
        problems.append(f"it holds a {config.model} run")
    patch = options.overrides.get("patch_size")
    if patch and list(patch) != config.patch_size:  # type: ignore[call-overload]
        problems.append(f"its patch size is {config.patch_size}")
    if not _same_labels(spec, config):
        problems.append("it was trained on a dataset with other labels or channels")
    if problems:
        raise ConfigError(located(run_dir, "; ".join(problems) + "; use another --out"))


def plan_for_run(dataset: DatasetFolder, run_dir: Path, options: TrainOptions) -> Plan:
    """The run's plan with ``options`` applied (`configure_plan`): the run folder's own (a
    further fold), else ``options.plan_file``, else a new one from the dataset (its
    fingerprint saved into the run folder)."""
    if (run_dir / PLAN_FILE).exists():
        plan = Plan.load(run_dir)
        _check_same_run(plan, run_dir, dataset.spec, options)
        return configure_plan(plan, options)
    if options.plan_file is not None:
        return configure_plan(Plan.read(options.plan_file), options)
    return plan_dataset(dataset, options, fingerprint_to=run_dir / "fingerprint.json")


#: Preprocessed cases up to this size are read into memory; larger caches are memory-mapped.
_IN_MEMORY_BYTES = 4 * 2**30


def load_preprocessed(
    dataset: DatasetFolder, plan: Plan, cache_dir: Path, quiet: bool = False
) -> list[TrainingCase]:
    """Every training case through the plan's preprocessing (cached in ``cache_dir``)."""
    assert plan.preprocessing is not None
    cached = preprocess_dataset(dataset, plan.preprocessing, cache_dir, quiet=quiet)
    lookup = plan.class_lookup()
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
    dataset: DatasetFolder, run_dir: Path, options: TrainOptions, fold: Fold
) -> tuple[Plan, list[TrainingCase]]:
    """The run's plan (with a default budget if it has none) and its preprocessed training
    cases; checks that fold ``fold`` exists."""
    plan = plan_for_run(dataset, run_dir, options)
    if plan.epochs is None and plan.minutes is None:
        plan = plan.model_copy(update={"epochs": DEFAULT_EPOCHS})
    spec = dataset.spec
    if not _same_labels(spec, plan):
        raise ConfigError(located(dataset.root, "the plan was made for other labels or channels"))
    if fold != ALL_CASES and not 0 <= fold < plan.n_folds:  # type: ignore[operator]
        raise ConfigError(f"--fold {fold}: expected 0 to {plan.n_folds - 1} or all")
    if options.deterministic and plan.epochs is None:  # the run folder's plan has minutes
        raise ConfigError(NEEDS_EPOCHS)
    if plan.preprocessing is None:
        cases, _, _ = load_cases(dataset, plan.class_lookup(), options.quiet)
    else:
        cache = Path(options.cache_dir or run_dir / "preprocessed")
        cases = load_preprocessed(dataset, plan, cache, options.quiet)
    if len(cases) < plan.n_folds:
        raise ConfigError(
            located(dataset.root, f"{len(cases)} cases are too few for {plan.n_folds} folds")
        )
    return plan, cases


def _prepare_run_folder(
    dataset: DatasetFolder, run_dir: Path, options: TrainOptions, fold: Fold
) -> tuple[Plan, list[TrainingCase]]:
    """`_prepare` in ``run_dir``, created if needed; a run that never starts leaves nothing."""
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return _prepare(dataset, run_dir, options, fold)
    except BaseException:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _write_run_files(
    run_dir: Path, dataset: DatasetFolder, plan: Plan, case_ids: list[str], given: Path | None
) -> list[tuple[list[str], list[str]]]:
    """``splits.json``, ``plan.json`` and the copy of ``dataset.json``; returns the folds.

    A run keeps the folds it started with (its ``splits.json``: folds added or resumed later
    hold out the same cases). A new run takes ``given`` (``--splits``), else the dataset's
    ``splits_final.json`` (nnU-Net's file), else nnU-Net's split of the cases
    (`kfold_splits`)."""
    written = run_dir / "splits.json"
    if written.is_file():
        folds = _run_splits(written, case_ids)
        if given is not None and folds != read_splits(given, case_ids):
            raise ConfigError(located(given, "the run folder was trained on other folds"))
    else:
        given = given or (dataset.root / "splits_final.json")
        if given.is_file():
            folds = read_splits(given, case_ids)
            if len(folds) != plan.n_folds:
                problem = (
                    f"{len(folds)} folds, the plan {plan.n_folds} (--set n_folds={len(folds)})"
                )
                raise ConfigError(located(given, problem))
        else:
            folds = kfold_splits(case_ids, plan.n_folds)
        splits = [{"fold": k, "train": t, "validation": v} for k, (t, v) in enumerate(folds)]
        write_text_atomic(written, json.dumps(splits, indent=1) + "\n")
    plan.save(run_dir)
    write_text_atomic(
        run_dir / "dataset.json", (dataset.root / "dataset.json").read_text(encoding="utf-8")
    )
    return folds


def _run_splits(path: Path, case_ids: list[str]) -> list[tuple[list[str], list[str]]]:
    """A run folder's ``splits.json``, which must name exactly the dataset's cases."""
    raw = read_json_file(path, RunFolderError)
    try:
        folds = [(list(f["train"]), list(f["validation"])) for f in raw]
    except (TypeError, KeyError):
        folds = []
    if not folds:
        raise RunFolderError(located(path, "not a list of train/validation folds"))
    if set(folds[0][0]) | set(folds[0][1]) != set(case_ids):
        problem = "names other cases than the dataset has: train into another --out"
        raise ConfigError(located(path, problem))
    return folds


def prepare_run(dataset_dir: str | Path, run_dir: str | Path, options: TrainOptions) -> None:
    """Plan and preprocess a run folder and write its plan, splits and dataset.json, training
    nothing: what the first fold of a run does first, done once before several processes
    train folds of their own."""
    run_dir = Path(run_dir)
    dataset = open_dataset(dataset_dir)
    plan, cases = _prepare_run_folder(dataset, run_dir, options, ALL_CASES)
    given = Path(options.splits_file) if options.splits_file is not None else None
    _write_run_files(run_dir, dataset, plan, [c.case_id for c in cases], given)


def train_run(
    dataset_dir: str | Path,
    run_dir: str | Path,
    options: TrainOptions | None = None,
    fold: Fold = 0,
) -> TrainResult:
    """Train fold ``fold`` of a dataset into ``run_dir``; fold ``"all"`` trains on every
    case, without validation (the last epoch's weights are the model).

    The first fold trained in a run folder fixes its plan (``plan.json``: from
    ``options.plan_file``, else planned from the dataset's fingerprint for this device and the
    ``minutes`` budget); later folds reuse it, so every fold of a run has the same
    preprocessing, network and patch size. The budget is ``epochs`` or ``minutes`` per fold
    (default: the plan's, else 100 epochs). Training reads the cases from the preprocessed
    cache (``options.cache_dir``, default ``run_dir/preprocessed``), made once. See
    `TrainOptions` for resuming, transfer learning and deterministic runs.

    Examples
    --------
    >>> result = train_run("Dataset004_Hippocampus", "runs/hippo", TrainOptions(minutes=10))
    ... # doctest: +SKIP
    """
    options = options or TrainOptions()
    if options.init_from is not None:
        find_weights(options.init_from)  # a wrong path fails before anything is written
    run_dir = Path(run_dir)
    fold_dir = run_dir / f"fold_{fold}"
    if not options.resume and (fold_dir / STATE_FILE).exists():
        raise ConfigError(
            located(fold_dir, "already trained; --resume continues it (or use another --out)")
        )
    device = rank_device(resolve_device(options.device), distributed.current_ranks())
    dataset = open_dataset(dataset_dir)
    main = distributed.current_ranks().is_main
    if not main:
        distributed.barrier()  # rank 0 plans, preprocesses and writes the run's files first
    plan, cases = _prepare_run_folder(dataset, run_dir, options, fold)
    torch.use_deterministic_algorithms(options.deterministic)
    ids = [c.case_id for c in cases]
    given = Path(options.splits_file) if options.splits_file is not None else None
    if main:
        folds = _write_run_files(run_dir, dataset, plan, ids, given)
        distributed.barrier()
    else:
        folds = _run_splits(run_dir / "splits.json", ids)
    fold_cases = _split(cases, folds, fold)
    if fold != ALL_CASES:
        plan = _fold_cap(plan, len(fold_cases[0]), len(cases), fold_dir.name, options.quiet)
    resumed = options.resume and (fold_dir / STATE_FILE).exists()
    if not resumed and main:
        remove_members(run_dir, fold)
        if fold == ALL_CASES:
            held_out.remove_search(run_dir)
    record = {"dataset": dataset.root, "device": device, "deterministic": options.deterministic}

    def record_model(model_dir: Path, details: dict[str, object]) -> None:
        """Record one model of this run in the manifest (rank 0 only)."""
        if main:
            fold_name = model_dir.name.removeprefix("fold_")
            record_fold(run_dir, **record, seed=options.seed, fold=fold_name, details=details)

    def train_one(
        model_plan: Plan,
        model_dir: Path,
        split: Split | None = None,
        resume: bool = False,
        validate: bool = True,
    ) -> TrainResult:
        """Train one model of this fold (or on ``split``) and record it in the manifest;
        ``validate``: predict and score its validation cases at the end."""
        split = split or fold_cases
        result = _train_model(model_plan, split, model_dir, device, options, resume, validate)
        record_model(model_dir, {**_fold_details(result, resume), "seed": model_plan.seed})
        return result

    search = None
    if fold == ALL_CASES and resumed:
        plan = held_out.resumed_plan(plan, run_dir)
    elif fold == ALL_CASES and held_out.search_wanted(plan, len(cases)):
        split = _split(cases, folds, 0)
        plan, search = held_out.search_then_plan(
            train_one, plan, split, len(cases), run_dir, options.quiet
        )
    started = time.perf_counter()
    result = train_one(plan, fold_dir, resume=resumed)
    result.search = search
    if resumed:  # adds no models; a fold's validation still averages those it has
        result.members = member_dirs(run_dir, fold)
    elif capped_early(plan, result):
        # ranks agree; a model's time is its training, without its validation's prediction
        spent = distributed.from_rank_zero(time.perf_counter() - started)
        left = plan.minutes * 60 - spent  # type: ignore[operator]
        per_model = distributed.from_rank_zero(result.seconds)
        member_one = functools.partial(train_one, validate=False)  # the ensemble is scored
        result.members = train_members(member_one, plan, fold_dir, per_model, left, options.quiet)
    if result.members and fold_cases[1] and main:
        details = _score_ensemble(result, plan, fold_cases[1], device, resumed)
        record_model(fold_dir, {**details, "seed": plan.seed})
    return result


def _score_ensemble(
    result: TrainResult,
    plan: Plan,
    cases: list[TrainingCase],
    device: torch.device,
    resumed: bool,
) -> dict[str, object]:
    """Score a fold's validation ``cases`` again with its first model and ``result.members``
    averaged, in place of the first model's scores (``fold_K/validation``); the fold's
    manifest record, which keeps the first model's own mean Dice beside."""
    first = result.validation.summary.get("mean_dice") if result.validation else None
    models = [result.fold_dir, *result.members]
    out = result.fold_dir / "validation"
    result.validation = validate_ensemble(plan, models, cases, device, out)
    members = [m.name for m in result.members]
    ensemble = {"members": members, "first_model_validation_mean_dice": first}
    return {**_fold_details(result, resumed), **ensemble}


def _fold_cap(plan: Plan, trained: int, all_cases: int, name: str, quiet: bool) -> Plan:
    """A fold's plan: the step cap, which counts the data trained on, scaled to the
    ``trained`` cases of ``all_cases`` (`held_out.cap_for_cases`), as the log says."""
    if plan.max_iterations is None:
        return plan
    scaled = held_out.cap_for_cases(plan, trained, all_cases)
    cap = f"the step cap {plan.max_iterations} scales to {scaled.max_iterations}"
    log_line(f"{name} trains {trained} of {all_cases} cases: {cap}", quiet)
    return scaled


def _split(
    cases: list[TrainingCase], folds: list[tuple[list[str], list[str]]], fold: Fold
) -> Split:
    """Fold ``fold``'s training and validation cases (every case and none for "all")."""
    if fold == ALL_CASES:
        return cases, []
    by_id = {c.case_id: c for c in cases}
    train_ids, val_ids = folds[fold]  # type: ignore[index]
    return [by_id[i] for i in train_ids], [by_id[i] for i in val_ids]


def _train_model(
    plan: Plan,
    cases: tuple[list[TrainingCase], list[TrainingCase]],
    fold_dir: Path,
    device: torch.device,
    options: TrainOptions,
    resumed: bool,
    validate: bool = True,
) -> TrainResult:
    """Train one network on ``cases`` (training, validation) into ``fold_dir``; with
    ``validate``, score the validation cases, if any, with its best weights."""
    trainer = Trainer(
        plan,
        *cases,
        fold_dir,
        device,
        options.quiet,
        init_from=options.init_from,
        freeze_encoder=options.freeze_encoder,
    )
    if resumed:
        trainer.resume()
        log_line(f"{fold_dir.name}: resuming after epoch {len(trainer.history)}", options.quiet)
    elif trainer.transfer is not None:
        log_line(trainer.transfer.summary(), options.quiet)
    result = trainer.fit()
    if validate and cases[1] and distributed.current_ranks().is_main:
        result.validation = trainer.predict_validation(fold_dir / "validation")
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
