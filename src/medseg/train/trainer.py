"""The training loop, built from named hooks that a subclass may replace.

``build_network``, ``build_loss``, ``build_optimizer``, ``learning_rate``, ``train_step`` and
``validation_step`` are the hooks; their settings all come from the `Plan`, so changing
the number of epochs or the learning rate never needs code.
"""

from __future__ import annotations

import csv
import io as text_io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.io import Image, read_image, write_image, write_text_atomic
from medseg.metrics import (
    Evaluation,
    default_jobs,
    dice_per_label,
    score_case,
    summarise,
    write_evaluation,
)
from medseg.nn import DiceCELoss, predict_volume
from medseg.preprocess import restore_probabilities
from medseg.progress import log_line, make_progress
from medseg.train.checkpoint import load_weights, save_weights
from medseg.train.plan import Plan, network_for
from medseg.train.sampler import PatchSampler, TrainingCase

BEST_WEIGHTS = "model_best.safetensors"
LATEST_WEIGHTS = "model_latest.safetensors"
LOG_FILE = "log.csv"


@dataclass
class EpochRecord:
    """One row of the training log."""

    epoch: int
    iterations: int
    seconds: float
    learning_rate: float
    train_loss: float
    val_dice_mean: float
    val_dice: dict[str, float] = field(default_factory=dict)
    # where the epoch's time went: drawing patches, training steps, validation
    data_seconds: float = 0.0
    step_seconds: float = 0.0
    validation_seconds: float = 0.0


@dataclass
class TrainResult:
    """What a finished (or interrupted) fold left behind."""

    fold_dir: Path
    epochs: int
    best_epoch: int
    best_val_dice: float
    seconds: float
    history: list[EpochRecord]
    validation: Evaluation | None = None


class Trainer:
    """Trains one fold: sampler -> network -> loss, validation after every epoch.

    Parameters
    ----------
    config
        The run configuration.
    train_cases, val_cases
        Normalised cases with class-index targets.
    fold_dir
        Where weights and the log go.
    device
        Compute device.
    quiet
        No progress output.
    """

    def __init__(
        self,
        config: Plan,
        train_cases: list[TrainingCase],
        val_cases: list[TrainingCase],
        fold_dir: Path,
        device: torch.device,
        quiet: bool = False,
    ) -> None:
        self.config = config
        self.train_cases = train_cases
        self.val_cases = val_cases
        self.fold_dir = fold_dir
        self.device = device
        self.quiet = quiet
        self.rng = np.random.default_rng(config.seed)
        self.iteration = 0
        self._start = time.perf_counter()
        torch.manual_seed(config.seed)
        self.network = self.build_network().to(device)
        self.loss = self.build_loss()
        self.optimizer = self.build_optimizer()
        patch = list(config.patch_size)
        if config.slice_axis is not None:
            patch.insert(config.slice_axis, 1)
        self.sampler = PatchSampler(
            train_cases, patch, self.rng, config.foreground_fraction, config.slice_axis
        )

    # ---- hooks -------------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        """The network named by the configuration."""
        return network_for(self.config)

    def build_loss(self) -> nn.Module:
        """Dice + cross-entropy."""
        return DiceCELoss()

    def build_optimizer(self) -> torch.optim.Optimizer:
        """AdamW, or SGD with Nesterov momentum 0.99 (nnU-Net's choice)."""
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                self.network.parameters(),
                lr=c.learning_rate,
                momentum=0.99,
                nesterov=True,
                weight_decay=c.weight_decay,
            )
        return torch.optim.AdamW(
            self.network.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay
        )

    def learning_rate(self, fraction_done: float) -> float:
        """Polynomial decay (power 0.9) over the fraction of the budget spent."""
        return self.config.learning_rate * (1 - min(fraction_done, 0.999)) ** 0.9

    def train_step(self, image: torch.Tensor, target: torch.Tensor) -> float:
        """One optimisation step on a batch; returns the loss."""
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.network(image), target)
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), 12.0)
        self.optimizer.step()
        return float(loss.detach())

    @torch.no_grad()
    def validation_step(self) -> dict[int, float]:
        """Mean Dice per foreground class over the validation cases (NaN-free classes only)."""
        self.network.eval()
        c = self.config
        scores: dict[int, list[float]] = {k: [] for k in range(1, c.num_classes)}
        for case in self.val_cases:
            image = torch.from_numpy(case.image).to(self.device)
            # Tiles without overlap: a fraction of the cost of the final 50% overlap, and
            # close enough to rank epochs.
            probs = predict_volume(
                self.network, image, c.patch_size, 2 * c.batch_size, c.slice_axis, overlap=0.0
            )
            prediction = probs.argmax(0).cpu().numpy()
            for k, value in dice_per_label(case.target, prediction, scores).items():
                if not math.isnan(value):
                    scores[k].append(value)
        return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}

    # ---- the loop ------------------------------------------------------------------------
    def _fraction_done(self, iteration: int, elapsed: float) -> float:
        c = self.config
        if c.minutes is not None:
            return elapsed / (c.minutes * 60)
        assert c.epochs is not None
        return iteration / (c.epochs * c.iterations_per_epoch)

    def _write_log(self, history: list[EpochRecord]) -> None:
        names = self.config.label_names[1:]
        buffer = text_io.StringIO()
        writer = csv.writer(buffer)
        header = ["epoch", "iterations", "seconds", "learning_rate", "train_loss", "val_dice_mean"]
        timing = ["data_seconds", "step_seconds", "validation_seconds"]
        writer.writerow(header + [f"val_dice_{n}" for n in names] + timing)
        for r in history:
            row = asdict(r)
            values = (
                [row[h] for h in header]
                + [r.val_dice.get(n, float("nan")) for n in names]
                + [row[t] for t in timing]
            )
            writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in values])
        write_text_atomic(self.fold_dir / LOG_FILE, buffer.getvalue())

    def _budget_left(self, epoch: int, elapsed: float, last_epoch_seconds: float) -> bool:
        """Whether another epoch fits: epochs left, or time for one more epoch."""
        c = self.config
        if c.epochs is not None:
            return epoch < c.epochs
        assert c.minutes is not None
        return epoch == 0 or elapsed + last_epoch_seconds <= c.minutes * 60

    def _train_epoch(self, advance: Callable[[int], None]) -> tuple[float, float, float, float]:
        """``iterations_per_epoch`` steps; returns the mean loss, the last learning rate and
        the seconds spent drawing batches and in training steps."""
        c = self.config
        losses, lr = [], c.learning_rate
        data_seconds = step_seconds = 0.0
        for _ in range(c.iterations_per_epoch):
            lr = self.learning_rate(self._fraction_done(self.iteration, self._elapsed()))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            start = time.perf_counter()
            image, target = self.sampler.sample(c.batch_size)
            image, target = image.to(self.device), target.to(self.device)
            drawn = time.perf_counter()
            losses.append(self.train_step(image, target))
            data_seconds += drawn - start
            step_seconds += time.perf_counter() - drawn
            self.iteration += 1
            advance(self.iteration)
        return float(np.mean(losses)), lr, data_seconds, step_seconds

    @torch.no_grad()
    def predict_validation(self, out_dir: Path) -> Evaluation:
        """Predict every validation case with the best weights, as `medseg predict` would
        (50 % overlap, Gaussian weighting), write the label maps and score them.

        Writes ``{case}{file_ending}``, ``metrics.csv`` and ``summary.json`` into ``out_dir``.
        """
        c = self.config
        best = self.fold_dir / BEST_WEIGHTS
        if best.is_file():
            load_weights(self.network, best, self.device)
        self.network.eval()
        names = dict(zip(c.label_values[1:], c.label_names[1:]))
        rows: list[dict[str, object]] = []
        lesion_rows: list[dict[str, object]] = []
        for case in self.val_cases:
            image = torch.from_numpy(np.ascontiguousarray(case.image)).to(self.device)
            probs = predict_volume(
                self.network, image, c.patch_size, 2 * c.batch_size, c.slice_axis
            )
            if case.geometry is not None and case.label_path is not None:
                # back onto the case's own grid, scored against its own label file
                restored = restore_probabilities(probs.cpu().numpy(), case.geometry)
                prediction = c.labels_from_classes(restored.argmax(0))
                affine = np.asarray(case.geometry.original_affine)
                reference = read_image(case.label_path).array[0]
            else:
                prediction = c.labels_from_classes(probs.argmax(0).cpu().numpy())
                affine = case.affine
                reference = c.labels_from_classes(case.target)
            result = Image(prediction[None], affine)
            write_image(result, out_dir / f"{case.case_id}{c.file_ending}")
            spacing = result.spacing
            scores = score_case(
                case.case_id,
                reference,
                prediction,
                c.label_values[1:],
                names,
                spacing,
                threads=default_jobs(),
            )
            rows += scores.metrics
            lesion_rows += scores.lesions
        summary = summarise(rows, c.label_values[1:], names, len(self.val_cases), lesion_rows)
        evaluation = Evaluation(rows, summary, lesion_rows=lesion_rows, labels=names)
        write_evaluation(evaluation, out_dir)
        return evaluation

    def _elapsed(self) -> float:
        return time.perf_counter() - self._start

    def _save_checkpoint(self, name: str, metadata: dict[str, str]) -> None:
        save_weights(self.network, self.fold_dir / name, metadata)

    def fit(self) -> TrainResult:
        """Train within the configured budget (epochs or minutes) and save the weights.

        Latest weights are saved after every epoch and on Ctrl-C (then the interrupt is
        re-raised); the best weights by mean validation Dice are kept beside them.
        """
        c = self.config
        if c.epochs is None and c.minutes is None:
            raise ValueError("set a budget: epochs or minutes")
        self.fold_dir.mkdir(parents=True, exist_ok=True)
        history: list[EpochRecord] = []
        best_dice, best_epoch = -math.inf, 0
        self.iteration, self._start = 0, time.perf_counter()
        by_time = c.epochs is None
        total = int(c.minutes * 60) if by_time else c.epochs * c.iterations_per_epoch  # type: ignore[operator]
        with make_progress(self.quiet) as progress:
            task = progress.add_task("training", total=total, status="")

            def advance(iteration: int) -> None:
                done = self._elapsed() if by_time else iteration
                progress.update(task, completed=min(done, total))

            epoch, last_epoch_seconds = 0, 0.0
            try:
                while self._budget_left(epoch, self._elapsed(), last_epoch_seconds):
                    epoch += 1
                    epoch_start = time.perf_counter()
                    loss, lr, data_seconds, step_seconds = self._train_epoch(advance)
                    validation_start = time.perf_counter()
                    val = self.validation_step()
                    validation_seconds = time.perf_counter() - validation_start
                    defined = [v for v in val.values() if not math.isnan(v)]
                    val_mean = float(np.mean(defined)) if defined else math.nan
                    labels = {self.config.label_names[k]: v for k, v in val.items()}
                    record = EpochRecord(
                        epoch,
                        self.iteration,
                        round(self._elapsed(), 2),
                        lr,
                        loss,
                        val_mean,
                        labels,
                        data_seconds,
                        step_seconds,
                        validation_seconds,
                    )
                    history.append(record)
                    meta = {"epoch": str(epoch), "val_dice_mean": f"{val_mean:.6f}"}
                    self._save_checkpoint(LATEST_WEIGHTS, meta)
                    score = -1.0 if math.isnan(val_mean) else val_mean
                    if score > best_dice:
                        best_dice, best_epoch = score, epoch
                        self._save_checkpoint(BEST_WEIGHTS, meta)
                    self._write_log(history)
                    status = f"loss {loss:.3f}  val Dice {val_mean:.3f}"
                    advance(self.iteration)
                    progress.update(task, status=status)
                    log_line(f"epoch {epoch}: {status}  ({self._elapsed():.0f} s)", self.quiet)
                    last_epoch_seconds = time.perf_counter() - epoch_start
            except KeyboardInterrupt:
                self._save_checkpoint(LATEST_WEIGHTS, {"interrupted": "1"})
                if not (self.fold_dir / BEST_WEIGHTS).exists():
                    self._save_checkpoint(BEST_WEIGHTS, {"interrupted": "1"})
                self._write_log(history)
                raise
        return TrainResult(
            self.fold_dir, len(history), best_epoch, best_dice, self._elapsed(), history
        )
