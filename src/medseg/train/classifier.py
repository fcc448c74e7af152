"""Training a classifier on a classification dataset folder (``medseg train-classifier``).

Every image is read once, resized to the plan's input size and normalised (z-score per image
and channel), and held in memory as one tensor: classification datasets are many small images.
Batches are drawn class-balanced (each class equally often) unless the plan says otherwise,
augmented on the training device like segmentation patches (the short recipe: no mirroring),
and the network is scored on the validation cases every ``steps_per_epoch`` steps: ROC AUC,
accuracy, balanced accuracy and loss go to ``log.csv``; the weights with the best validation
AUC are kept (``model_best.safetensors``), the latest beside them.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg.augment import Augmenter
from medseg.datasets import kfold_splits, read_case_image
from medseg.datasets.classification import ClassificationDataset, open_classification_dataset
from medseg.device import resolve_device
from medseg.errors import ConfigError, DatasetError, located
from medseg.io import write_text_atomic
from medseg.loop import Budget, deferred_interrupt, poly_learning_rate, write_log_rows
from medseg.metrics.classification import accuracy, balanced_accuracy, multiclass_auc
from medseg.nn.checkpoint import save_weights
from medseg.progress import log_line, make_progress
from medseg.runs import BEST_WEIGHTS, LATEST_WEIGHTS
from medseg.runs.classifier_plan import ClassifierPlan, network_for_classifier, prepare_image
from medseg.train.classifier_plan import plan_classifier

#: The best weights' predictions of the validation cases, in each fold folder.
VALIDATION_FILE = "validation.csv"
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
    quiet: bool = False,
) -> ClassifierResult:
    """Plan and train a classifier on ``dataset_dir`` into ``run_dir`` for ``minutes`` (or
    ``epochs`` of the plan's ``steps_per_epoch`` steps); ``fold`` is a fold of the dataset's
    ``splits_final.json`` (else of a 5-fold split) or ``"all"`` (every case, no validation).

    Examples
    --------
    >>> train_classifier("Dataset201_Pneumonia", "runs/pneumonia", minutes=5)  # doctest: +SKIP
    """
    if (minutes is None) == (epochs is None):
        raise ConfigError("give a budget: minutes or epochs")
    dataset = open_classification_dataset(dataset_dir)
    run_dir = Path(run_dir)
    images = _load_images(dataset)
    train_ids, val_ids = _split(dataset, fold)
    torch_device = resolve_device(device)
    plan = plan_classifier(dataset, images, torch_device, minutes, seed, overrides or {})
    _check_run_folder(run_dir, plan)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.save(run_dir)
    fold_dir = run_dir / f"fold_{fold}"
    fold_dir.mkdir(exist_ok=True)
    inputs = _as_tensor(images, plan, dataset)
    index = {case.case_id: k for k, case in enumerate(dataset.training)}
    targets = torch.tensor([dataset.classes[case.case_id] for case in dataset.training])
    budget = Budget(epochs=epochs, minutes=minutes, steps_per_epoch=plan.steps_per_epoch)
    loop = _Loop(plan, torch_device, fold_dir, quiet)
    loop.val_ids = list(val_ids)
    result = loop.run(
        inputs, targets, [index[c] for c in train_ids], [index[c] for c in val_ids], budget
    )
    result.run_dir = run_dir
    return result


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


class _Loop:
    """The steps, the validations and what they write."""

    def __init__(self, plan: ClassifierPlan, device: torch.device, fold_dir: Path, quiet: bool):
        torch.manual_seed(plan.seed)
        self.plan, self.device, self.fold_dir, self.quiet = plan, device, fold_dir, quiet
        self.network = network_for_classifier(plan).to(device)
        optimizer = torch.optim.AdamW if plan.optimizer == "adamw" else torch.optim.SGD
        extra = {} if plan.optimizer == "adamw" else {"momentum": 0.9, "nesterov": True}
        self.optimizer = optimizer(
            self.network.parameters(), lr=plan.learning_rate, weight_decay=plan.weight_decay,
            **extra,
        )  # fmt: skip
        self.augment = Augmenter(plan.augmentation, plan.dim, seed=plan.seed, device=device)
        self.rng = np.random.default_rng(plan.seed)
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {}
        self.val_ids: list[str] = []

    def run(self, inputs, targets, train, val, budget: Budget) -> ClassifierResult:
        start, steps = time.perf_counter(), 0
        weights = _sampling_weights(targets[train].numpy(), self.plan)
        with deferred_interrupt() as stop, make_progress(self.quiet) as progress:
            task = progress.add_task("training", total=None)
            try:
                while not budget.spent(steps):
                    stop.check()
                    batch = self.rng.choice(train, self.plan.batch_size, p=weights)
                    loss = self._step(inputs[batch], targets[batch], budget.fraction_done(steps))
                    steps += 1
                    progress.update(task, advance=1, status=f"loss {loss:.3f}")
                    if steps % self.plan.steps_per_epoch == 0 or budget.spent(steps):
                        self._epoch_end(steps, loss, inputs[val], targets[val])
            except KeyboardInterrupt:
                log_line("interrupted: the best weights so far are kept", self.quiet)
        return ClassifierResult(
            self.fold_dir.parent, self.fold_dir, steps, time.perf_counter() - start,
            self.best, self.history,
        )  # fmt: skip

    def _step(self, images: torch.Tensor, targets: torch.Tensor, done: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = poly_learning_rate(self.plan.learning_rate, min(done, 1.0))
        dummy = torch.zeros((images.shape[0], *images.shape[2:]), dtype=torch.int64)
        images, _ = self.augment(images, dummy)
        self.network.train()
        logits = self.network(images)
        loss = F.cross_entropy(logits, targets.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def _epoch_end(self, steps: int, loss: float, images, targets) -> None:
        row: dict[str, float] = {"step": steps, "train_loss": round(loss, 5)}
        probabilities = None
        if len(targets):
            probabilities = predict_probabilities(
                self.network, images, self.plan.batch_size, self.device
            )
            row |= validation_scores(targets.numpy(), probabilities)
        self.history.append(row)
        save_weights(self.network, self.fold_dir / LATEST_WEIGHTS)
        score = row.get("val_auc", float("nan"))
        if not self.best or _better(score, self.best.get("val_auc", float("nan"))):
            self.best = row
            save_weights(self.network, self.fold_dir / BEST_WEIGHTS)
            if probabilities is not None:
                self._write_validation(targets.numpy(), probabilities)
        write_log_rows(self.fold_dir, self.history)
        write_text_atomic(self.fold_dir / "best.json", json.dumps(self.best, indent=1) + "\n")
        log_line(f"step {steps}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()), self.quiet)

    def _write_validation(self, truth: np.ndarray, probabilities: np.ndarray) -> None:
        """The best weights' validation predictions (``medseg evaluate-classification
        --threshold-from`` chooses a threshold on them)."""
        names = self.plan.class_names
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["case", "truth", "class", *(f"p_{name}" for name in names)])
        for case, true, row in zip(self.val_ids, truth, probabilities):
            writer.writerow([case, names[true], names[row.argmax()], *(f"{p:.6f}" for p in row)])
        write_text_atomic(self.fold_dir / VALIDATION_FILE, text.getvalue())


def _better(score: float, best: float) -> bool:
    if np.isnan(score):
        return np.isnan(best)  # without validation the latest weights are the best
    return np.isnan(best) or score > best


def _sampling_weights(targets: np.ndarray, plan: ClassifierPlan) -> np.ndarray:
    """Probability of drawing each training case: equal per class with ``balance`` on."""
    if plan.balance == "none":
        return np.full(len(targets), 1.0 / len(targets))
    counts = np.bincount(targets, minlength=plan.num_classes).astype(np.float64)
    weights = 1.0 / counts[targets]
    return weights / weights.sum()


@torch.no_grad()
def predict_probabilities(network, images: torch.Tensor, batch: int, device) -> np.ndarray:
    """Softmax probabilities ``(N, K)`` of ``network`` for prepared ``images``."""
    network.eval()
    chunks = [images[k : k + batch] for k in range(0, len(images), batch)]
    logits = torch.cat([network(chunk.to(device)).cpu() for chunk in chunks])
    return torch.softmax(logits, 1).numpy()


def validation_scores(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Loss (cross-entropy), ROC AUC, accuracy and balanced accuracy."""
    predicted = probabilities.argmax(1)
    picked = probabilities[np.arange(len(truth)), truth]
    return {
        "val_loss": round(float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0)))), 5),
        "val_auc": round(multiclass_auc(truth, probabilities), 5),
        "val_accuracy": round(accuracy(truth, predicted), 5),
        "val_balanced_accuracy": round(balanced_accuracy(truth, predicted), 5),
    }
