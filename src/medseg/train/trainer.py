"""The training loop, built from named hooks that a subclass may replace.

``build_network``, ``build_loss``, ``build_optimizer``, ``learning_rate``, ``train_step`` and
``validation_step`` are the hooks; their settings all come from the `RunConfig`, so changing
the number of epochs or the learning rate never needs code.
"""

from __future__ import annotations

import csv
import io as text_io
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.io import write_text_atomic
from medseg.metrics import dice_per_label
from medseg.nn import DiceCELoss, build_network, predict_volume
from medseg.progress import log_line, make_progress
from medseg.train.checkpoint import save_weights
from medseg.train.config import RunConfig
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


@dataclass
class TrainResult:
    """What a finished (or interrupted) fold left behind."""

    fold_dir: Path
    epochs: int
    best_epoch: int
    best_val_dice: float
    seconds: float
    history: list[EpochRecord]


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
        config: RunConfig,
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
        c = self.config
        return build_network(
            c.model, c.in_channels, c.num_classes, c.dim, c.features, c.strides, c.kernel_sizes
        )

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
        writer.writerow(header + [f"val_dice_{n}" for n in names])
        for r in history:
            row = asdict(r)
            values = [row[h] for h in header] + [r.val_dice.get(n, float("nan")) for n in names]
            writer.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in values])
        write_text_atomic(self.fold_dir / LOG_FILE, buffer.getvalue())

    def fit(self) -> TrainResult:
        """Train within the configured budget (epochs or minutes) and save the weights.

        Latest weights are saved after every epoch and on Ctrl-C (then the interrupt is
        re-raised); the best weights by mean validation Dice are kept beside them.
        """
        c = self.config
        self.fold_dir.mkdir(parents=True, exist_ok=True)
        if c.epochs is None and c.minutes is None:
            raise ValueError("set a budget: epochs or minutes")
        names = c.label_names
        history: list[EpochRecord] = []
        best = (-1.0, 0)
        iteration, start = 0, time.perf_counter()
        total = c.epochs * c.iterations_per_epoch if c.epochs else int(c.minutes * 60)  # type: ignore[operator]
        with make_progress(self.quiet) as progress:
            task = progress.add_task("training", total=total, status="")
            try:
                epoch = 0
                while True:
                    epoch += 1
                    epoch_start = time.perf_counter()
                    losses = []
                    for _ in range(c.iterations_per_epoch):
                        lr = self.learning_rate(
                            self._fraction_done(iteration, time.perf_counter() - start)
                        )
                        for group in self.optimizer.param_groups:
                            group["lr"] = lr
                        image, target = self.sampler.sample(c.batch_size)
                        losses.append(
                            self.train_step(image.to(self.device), target.to(self.device))
                        )
                        iteration += 1
                        done = iteration if c.epochs else time.perf_counter() - start
                        progress.update(task, completed=min(done, total))
                    val = self.validation_step()
                    val_mean = float(np.nanmean(list(val.values()))) if val else float("nan")
                    elapsed = time.perf_counter() - start
                    record = EpochRecord(
                        epoch,
                        iteration,
                        round(elapsed, 2),
                        lr,
                        float(np.mean(losses)),
                        val_mean,
                        {names[k]: v for k, v in val.items()},
                    )
                    history.append(record)
                    meta = {"epoch": str(epoch), "val_dice_mean": f"{val_mean:.6f}"}
                    save_weights(self.network, self.fold_dir / LATEST_WEIGHTS, meta)
                    if val_mean > best[0] or math.isnan(best[0]):
                        best = (val_mean, epoch)
                        save_weights(self.network, self.fold_dir / BEST_WEIGHTS, meta)
                    self._write_log(history)
                    status = f"loss {record.train_loss:.3f}  val Dice {val_mean:.3f}"
                    progress.update(
                        task,
                        completed=min(iteration if c.epochs else elapsed, total),
                        status=status,
                    )
                    log_line(f"epoch {epoch}: {status}  ({elapsed:.0f} s)", self.quiet)
                    epoch_seconds = time.perf_counter() - epoch_start
                    if c.epochs is not None and epoch >= c.epochs:
                        break
                    if c.minutes is not None and elapsed + epoch_seconds > c.minutes * 60:
                        break
            except KeyboardInterrupt:
                save_weights(self.network, self.fold_dir / LATEST_WEIGHTS, {"interrupted": "1"})
                if not (self.fold_dir / BEST_WEIGHTS).exists():
                    save_weights(self.network, self.fold_dir / BEST_WEIGHTS, {"interrupted": "1"})
                self._write_log(history)
                raise
        return TrainResult(
            self.fold_dir, len(history), best[1], best[0], time.perf_counter() - start, history
        )
