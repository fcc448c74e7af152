"""Cross-validation: every fold of a run, and all their validation predictions scored
together."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from medseg.datasets import DatasetFolder, open_dataset
from medseg.device import resolve_device
from medseg.folds import cross_validation_folders
from medseg.io.outputs import prepare_output_folder
from medseg.metrics import Evaluation, evaluate_folders, write_evaluation
from medseg.runs import Plan
from medseg.runs.manifest import run_lock
from medseg.train.distributed import Ranks, barrier, distributed_training, single_process
from medseg.train.options import TrainOptions
from medseg.train.run import Fold, prepare_run, train_run
from medseg.train.trainer import TrainResult


def train_folds(
    dataset_dir: str | Path,
    run_dir: str | Path,
    options: TrainOptions | None = None,
    folds: Sequence[Fold] | None = None,
) -> list[TrainResult]:
    """Train several folds (default: every fold of the plan, 5 unless the plan says
    otherwise) one after the other with `train_run`; once every fold of the plan has its
    validation predictions, score them together into ``run_dir/cross_validation``.

    Started by torchrun (``torchrun --nproc-per-node N -m medseg train ...``), every process
    runs this and each fold trains on all of them (`medseg.train.distributed`).

    Examples
    --------
    >>> results = train_folds("Dataset004_Hippocampus", "runs/hippo", TrainOptions(minutes=5))
    ... # doctest: +SKIP
    """
    options = options or TrainOptions()
    run_dir = Path(run_dir)
    with distributed_training(resolve_device(options.device)) as ranks:
        if ranks.is_main:  # (it removes temporaries: another rank's could be rank 0's)
            prepare_output_folder(run_dir)
        if options.spread_folds and ranks.distributed:
            return _train_spread(dataset_dir, run_dir, options, folds, ranks)
        first = 0 if folds is None else folds[0]
        results = [train_run(dataset_dir, run_dir, options, fold=first)]
        remaining = range(1, Plan.load(run_dir).n_folds) if folds is None else folds[1:]
        for fold in remaining:
            results.append(train_run(dataset_dir, run_dir, options, fold=fold))
        if ranks.is_main and cross_validation_complete(run_dir):
            summarise_cross_validation(run_dir, open_dataset(dataset_dir), options.quiet)
    return results


def _train_spread(
    dataset_dir: str | Path,
    run_dir: Path,
    options: TrainOptions,
    folds: Sequence[Fold] | None,
    ranks: Ranks,
) -> list[TrainResult]:
    """Each process trains folds of its own (fold k on process k mod N) after rank 0 has
    planned and preprocessed; whichever process completes the cross-validation scores it."""
    if ranks.is_main:
        prepare_run(dataset_dir, run_dir, options)
    barrier()
    every = list(range(Plan.load(run_dir).n_folds)) if folds is None else list(folds)
    with single_process():
        results = [train_run(dataset_dir, run_dir, options, fold=fold)
                   for fold in every[ranks.rank :: ranks.world_size]]  # fmt: skip
    with run_lock(run_dir):  # the last process to finish scores the cross-validation
        if cross_validation_complete(run_dir):
            summarise_cross_validation(run_dir, open_dataset(dataset_dir), options.quiet)
    return results


def cross_validation_complete(run_dir: str | Path) -> bool:
    """Whether every fold of the run's plan has scored its validation cases."""
    run_dir = Path(run_dir)
    n_folds = Plan.load(run_dir).n_folds
    return all((run_dir / f"fold_{k}/validation/summary.json").is_file() for k in range(n_folds))


def summarise_cross_validation(
    run_dir: Path, dataset: DatasetFolder, quiet: bool = True
) -> Evaluation:
    """Score every fold's validation predictions together (each case once, predicted by the
    fold that did not train on it): ``run_dir/cross_validation/`` gets the predictions,
    ``metrics.csv``, ``lesions.csv`` and ``summary.json``."""
    out = run_dir / "cross_validation"
    predictions = out / "predictions"
    if predictions.exists():
        shutil.rmtree(predictions)
    predictions.mkdir(parents=True)
    ending = dataset.spec.file_ending
    for folder in cross_validation_folders(run_dir):
        for path in sorted(folder.glob(f"*{ending}")):
            shutil.copy2(path, predictions / path.name)
    evaluation = evaluate_folders(
        predictions, dataset.root / "labelsTr", only_predicted=True, quiet=quiet
    )
    write_evaluation(evaluation, out)
    return evaluation
