"""Training a classifier on a classification dataset folder (``medseg train-classifier``).

Every image is read once, resized to the plan's input size and normalised (z-score per image
and channel), and held in memory as one tensor: classification datasets are many small images.
Batches are drawn class-balanced (each class equally often) unless the plan says otherwise,
augmented on the training device like segmentation patches (the short recipe: no mirroring),
and the network is scored on the validation cases every ``steps_per_epoch`` steps: ROC AUC,
accuracy, balanced accuracy and loss go to ``log.csv`` and ``curves.png``; the weights with
the best validation AUC are kept (``model_best.safetensors``), the latest beside them
(`medseg.train.classifier_loop`). ``manifest.json`` records each fold as for segmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medseg.datasets import kfold_splits, read_case_image
from medseg.datasets.classification import ClassificationDataset, open_classification_dataset
from medseg.device import resolve_device
from medseg.errors import ConfigError, DatasetError, located
from medseg.loop import Budget
from medseg.progress import log_line
from medseg.runs import record_fold
from medseg.runs.classifier_plan import ClassifierPlan, prepare_image
from medseg.train.classifier_loop import ClassifierLoop
from medseg.train.classifier_plan import plan_classifier, transferred_encoder
from medseg.train.resume import STATE_FILE
from medseg.train.transfer import TransferReport

#: The most input values held in memory for training (float32): 4 GiB.
MAX_VALUES = 2**30


@dataclass
class ClassifierResult:
    """What a classifier training left behind."""

    run_dir: Path
    fold_dir: Path
    steps: int
    seconds: float
    best: dict[str, float] = field(default_factory=dict)  # validation scores of the best step
    history: list[dict[str, float]] = field(default_factory=list)


def train_classifier(
    dataset_dir: str | Path,
    run_dir: str | Path,
    *,
    minutes: float | None = None,
    epochs: int | None = None,
    fold: int | str = 0,
    seed: int = 0,
    device: str = "auto",
    overrides: dict[str, object] | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    freeze_encoder: bool = False,
    quiet: bool = False,
) -> ClassifierResult:
    """Plan and train a classifier on ``dataset_dir`` into ``run_dir`` for ``minutes`` (or
    ``epochs`` of the plan's ``steps_per_epoch`` steps); ``fold`` is a fold of the dataset's
    ``splits_final.json`` (else of a 5-fold split) or ``"all"`` (every case, no validation).

    ``resume`` continues the fold from its last validation with the run's plan (a larger
    budget extends a finished fold); ``init_from`` starts from another run's encoder: a
    segmentation run's U-Net encoder or another classifier's (``freeze_encoder`` keeps it
    fixed).

    Examples
    --------
    >>> train_classifier("Dataset201_Pneumonia", "runs/pneumonia", minutes=5)  # doctest: +SKIP
    """
    if (minutes is None) == (epochs is None):
        raise ConfigError("give a budget: minutes or epochs")
    if freeze_encoder and init_from is None:
        raise ConfigError("--freeze-encoder needs --init-from")
    dataset = open_classification_dataset(dataset_dir)
    run_dir = Path(run_dir)
    fold_dir = run_dir / f"fold_{fold}"
    images = _load_images(dataset)
    train_ids, val_ids = _split(dataset, fold)
    torch_device = resolve_device(device)
    if resume:
        plan = _resumed_plan(run_dir, fold_dir, overrides, init_from)
    else:
        if (fold_dir / STATE_FILE).exists():
            problem = "already trained; --resume continues it (or use another --out)"
            raise ConfigError(located(fold_dir, problem))
        encoder = None if init_from is None else transferred_encoder(init_from, images[0].ndim - 1)
        plan = plan_classifier(
            dataset, images, torch_device, minutes, seed, overrides or {}, encoder
        )
        _check_run_folder(run_dir, plan)
        run_dir.mkdir(parents=True, exist_ok=True)
        plan.save(run_dir)
    fold_dir.mkdir(exist_ok=True)
    inputs = _as_tensor(images, plan, dataset)
    index = {case.case_id: k for k, case in enumerate(dataset.training)}
    targets = torch.tensor([dataset.classes[case.case_id] for case in dataset.training])
    loop = ClassifierLoop(plan, torch_device, fold_dir, quiet, None if resume else init_from,
                          freeze_encoder)  # fmt: skip
    if resume:
        loop.resume()
        log_line(f"{fold_dir.name}: resuming after step {loop.steps}", quiet)
    elif loop.transfer is not None:
        log_line(loop.transfer.summary(), quiet)
    loop.val_ids = list(val_ids)
    budget = Budget(epochs=epochs, minutes=minutes, steps_per_epoch=plan.steps_per_epoch)
    steps, seconds = loop.run(
        inputs, targets, [index[c] for c in train_ids], [index[c] for c in val_ids], budget
    )
    result = ClassifierResult(run_dir, fold_dir, steps, seconds, loop.best, loop.history)
    _record(result, dataset.root, torch_device, seed, fold, resume, loop.transfer)
    return result


def _resumed_plan(
    run_dir: Path, fold_dir: Path, overrides: dict[str, object] | None, init_from
) -> ClassifierPlan:
    """The plan of the run being resumed (``--set`` and ``--init-from`` cannot change it)."""
    if overrides or init_from is not None:
        raise ConfigError("--resume continues with the run's plan and weights: drop --set and "
                          "--init-from")  # fmt: skip
    plan = ClassifierPlan.load(run_dir)
    if not (fold_dir / STATE_FILE).is_file():
        raise ConfigError(located(fold_dir, f"nothing to resume (no {STATE_FILE})"))
    return plan


def _record(result: ClassifierResult, dataset_root: Path, device, seed: int, fold, resumed: bool,
            transfer: TransferReport | None) -> None:  # fmt: skip
    """The fold's entry in ``manifest.json``."""
    details: dict[str, object] = {
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "best": result.best,
        "resumed": resumed,
    }
    if transfer is not None:
        details["init_from"] = {
            "source": transfer.source, "loaded": len(transfer.loaded),
            "reinitialised": transfer.reinitialised, "frozen_parameters": transfer.frozen,
        }  # fmt: skip
    record_fold(result.run_dir, dataset=dataset_root, device=device, seed=seed,
                deterministic=False, fold=fold, details=details)  # fmt: skip


def _load_images(dataset: ClassificationDataset) -> list[np.ndarray]:
    arrays, total = [], 0
    for case in dataset.training:
        arrays.append(read_case_image(case, dataset.spec.num_channels).array)
        total += arrays[-1].size
        if total > MAX_VALUES:  # stop reading before memory runs out
            problem = f"the images hold more than {MAX_VALUES} values: too many to train on"
            raise DatasetError(located(dataset.root, problem))
    return arrays


def _check_run_folder(run_dir: Path, plan: ClassifierPlan) -> None:
    """A run folder holds one plan: another fold of the same plan may join it, nothing else."""
    if not (run_dir / "plan.json").is_file():
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise ConfigError(located(run_dir, "exists and is not a classifier run folder"))
        return
    existing = ClassifierPlan.load(run_dir).model_dump(exclude={"decisions"})
    if existing != plan.model_dump(exclude={"decisions"}):
        raise ConfigError(located(run_dir, "holds a run with another plan: choose a new --out"))


def _split(dataset: ClassificationDataset, fold: int | str) -> tuple[list[str], list[str]]:
    ids = [case.case_id for case in dataset.training]
    if fold == "all":
        return ids, []
    splits = dataset.splits or kfold_splits(ids, 5)
    if not 0 <= int(fold) < len(splits):
        raise ConfigError(f"fold {fold}: the dataset has folds 0..{len(splits) - 1}")
    return splits[int(fold)]


def _as_tensor(images: list[np.ndarray], plan: ClassifierPlan, dataset) -> torch.Tensor:
    if any(a.ndim - 1 != plan.dim for a in images):
        raise DatasetError(located(dataset.root, f"the images are not all {plan.dim}D"))
    return torch.stack([prepare_image(a, plan) for a in images])
