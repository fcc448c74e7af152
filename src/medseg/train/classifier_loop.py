"""The classifier's training loop: steps on class-balanced batches, a validation every
``steps_per_epoch`` steps, and what each validation writes into the fold folder.

After each validation: ``log.csv`` and ``curves.png`` (loss, validation AUC and accuracy),
``model_latest.safetensors``, ``best.json`` and, when the validation AUC is the best so far,
``model_best.safetensors`` and ``validation.csv``; and ``training_state.pt``, from which
`ClassifierLoop.resume` continues after an interruption (``--resume``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medseg.augment import Augmenter
from medseg.io import atomic_path, write_text_atomic
from medseg.io.atomic import remove_stale_temporaries
from medseg.loop import Budget, deferred_interrupt, poly_learning_rate, write_log_rows
from medseg.metrics.classification import accuracy, balanced_accuracy, multiclass_auc
from medseg.nn.checkpoint import save_weights
from medseg.progress import log_line, make_progress
from medseg.runs import BEST_WEIGHTS, LATEST_WEIGHTS
from medseg.runs.classifier_plan import ClassifierPlan, network_for_classifier
from medseg.train.resume import (
    load_training_state,
    numpy_generator_state,
    restore_numpy_generator,
    save_training_state,
)
from medseg.train.transfer import (
    TransferReport,
    freeze_encoder,
    load_compatible_weights,
    trainable_parameters,
)

#: The best weights' predictions of the validation cases, in each fold folder.
VALIDATION_FILE = "validation.csv"
#: The training curves, in each fold folder.
CURVES_FILE = "curves.png"


class ClassifierLoop:
    """The network, its optimiser and the loop's state for one fold.

    ``init_from`` (a run or weights) starts the network from every tensor that fits, and
    ``freeze`` then keeps its encoder fixed.
    """

    def __init__(
        self,
        plan: ClassifierPlan,
        device: torch.device,
        fold_dir: Path,
        quiet: bool,
        init_from: str | Path | None = None,
        freeze: bool = False,
    ) -> None:
        torch.manual_seed(plan.seed)
        self.plan, self.device, self.fold_dir, self.quiet = plan, device, fold_dir, quiet
        self.network = network_for_classifier(plan)
        self.transfer: TransferReport | None = None
        if init_from is not None:
            self.transfer = load_compatible_weights(self.network, init_from)
            if freeze:
                self.transfer.frozen = freeze_encoder(self.network)
        self.network.to(device)
        optimizer = torch.optim.AdamW if plan.optimizer == "adamw" else torch.optim.SGD
        extra = {} if plan.optimizer == "adamw" else {"momentum": 0.9, "nesterov": True}
        self.optimizer = optimizer(
            trainable_parameters(self.network), lr=plan.learning_rate,
            weight_decay=plan.weight_decay, **extra,
        )  # fmt: skip
        self.augment = Augmenter(plan.augmentation, plan.dim, seed=plan.seed, device=device)
        self.rng = np.random.default_rng(plan.seed)
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] = {}
        self.steps, self.seconds_before = 0, 0.0
        self.val_ids: list[str] = []

    def resume(self) -> None:
        """Continue from the fold's last validation (``training_state.pt``)."""
        remove_stale_temporaries(self.fold_dir)
        state = load_training_state(self.fold_dir, self.device)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.augment.load_state_dict(state["augmenter"])
        restore_numpy_generator(self.rng, state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"].cpu())
        self.steps, self.seconds_before = int(state["steps"]), float(state["seconds"])
        self.history, self.best = list(state["history"]), dict(state["best"])

    def run(self, inputs, targets, train, val, budget: Budget) -> tuple[int, float]:
        """Train on the ``train`` indices of ``inputs`` until ``budget`` is spent, validating
        on the ``val`` indices; returns the steps taken in all and the seconds spent."""
        budget.seconds_before = self.seconds_before
        budget.restart()
        weights = sampling_weights(targets[train].numpy(), self.plan)
        with deferred_interrupt() as stop, make_progress(self.quiet) as progress:
            task = progress.add_task("training", total=budget.total_steps, completed=self.steps)
            try:
                while not budget.spent(self.steps):
                    stop.check()
                    batch = self.rng.choice(train, self.plan.batch_size, p=weights)
                    done = budget.fraction_done(self.steps)
                    loss = self._step(inputs[batch], targets[batch], done)
                    self.steps += 1
                    progress.update(task, advance=1, status=f"loss {loss:.3f}")
                    if self.steps % self.plan.steps_per_epoch == 0 or budget.spent(self.steps):
                        self._validate(loss, inputs[val], targets[val], budget.elapsed())
            except KeyboardInterrupt:
                log_line("interrupted: the best weights so far are kept", self.quiet)
        return self.steps, budget.elapsed()

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

    def _validate(self, loss: float, images, targets, seconds: float) -> None:
        row: dict[str, float] = {
            "step": self.steps,
            "seconds": round(seconds, 1),
            "learning_rate": self.optimizer.param_groups[0]["lr"],
            "train_loss": round(loss, 5),
        }
        probabilities = None
        if len(targets):
            probabilities = predict_probabilities(
                self.network, images, self.plan.batch_size, self.device
            )
            row |= validation_scores(targets.numpy(), probabilities)
        self.history.append(row)
        save_weights(self.network, self.fold_dir / LATEST_WEIGHTS)
        if not self.best or _better(row.get("val_auc", np.nan), self.best.get("val_auc", np.nan)):
            self.best = row
            save_weights(self.network, self.fold_dir / BEST_WEIGHTS)
            if probabilities is not None:
                self._write_validation(targets.numpy(), probabilities)
        self._write_logs(seconds)
        log_line(f"step {self.steps}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()),
                 self.quiet)  # fmt: skip

    def _write_logs(self, seconds: float) -> None:
        write_log_rows(self.fold_dir, self.history)
        write_text_atomic(self.fold_dir / "best.json", json.dumps(self.best, indent=1) + "\n")
        plot_classifier_curves(self.history, self.fold_dir / CURVES_FILE)
        save_training_state(self.fold_dir, {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "augmenter": self.augment.state_dict(),
            "sampler_rng": numpy_generator_state(self.rng),
            "torch_rng": torch.get_rng_state(),
            "steps": self.steps,
            "seconds": seconds,
            "history": self.history,
            "best": self.best,
        })  # fmt: skip

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


def sampling_weights(targets: np.ndarray, plan: ClassifierPlan) -> np.ndarray:
    """Probability of drawing each training case: equal per class with ``balance`` on.

    Examples
    --------
    >>> plan = ClassifierPlan(dim=2, channel_names={"0": "x"}, class_names=["a", "b"],
    ...                       input_size=[8, 8])
    >>> sampling_weights(np.array([0, 0, 0, 1]), plan).round(3).tolist()
    [0.167, 0.167, 0.167, 0.5]
    """
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


def plot_classifier_curves(history: list[dict[str, float]], path: Path) -> None:
    """``curves.png``: training and validation loss, validation AUC / accuracy / balanced
    accuracy, and the learning rate against the step, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = [row["step"] for row in history]
    panels = {
        "loss": ["train_loss", "val_loss"],
        "validation": ["val_auc", "val_accuracy", "val_balanced_accuracy"],
        "learning rate": ["learning_rate"],
    }
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for axis, (title, columns) in zip(axes, panels.items()):
        for column in columns:
            if any(column in row for row in history):
                values = [row.get(column, np.nan) for row in history]
                axis.plot(steps, values, "o-", ms=2, label=column.removeprefix("val_"))
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if len(axis.get_lines()) > 1:
            axis.legend(fontsize=8)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=90, format="png")
    plt.close(figure)
