"""The training loop, built from named hooks that a subclass may replace.

``build_network``, ``build_loss``, ``build_optimizer``, ``build_augmenter``,
``learning_rate``, ``train_step`` and ``validation_step`` are the hooks; their settings all
come from the `Plan`, so changing the number of epochs or the learning rate never needs code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.augment import Augmenter, padded_patch_size
from medseg.device import autocast
from medseg.io.atomic import remove_stale_temporaries
from medseg.loop import (
    Budget,
    EpochRecord,
    StopRequest,
    TensorBoardWriter,
    deferred_interrupt,
    early_stop_due,
    poly_learning_rate,
    write_logs,
)
from medseg.metrics import Evaluation
from medseg.nn import DeepSupervisionLoss, DiceCELoss, predict_volume, windows_per_pass
from medseg.nn.checkpoint import load_weights, save_weights
from medseg.nn.losses import RegionDiceBCELoss
from medseg.progress import log_line, make_progress
from medseg.runs import BEST_WEIGHTS, LATEST_WEIGHTS, Plan, network_for
from medseg.runs.plan import IGNORE_CLASS
from medseg.train import distributed, transfer
from medseg.train.averaging import weight_average
from medseg.train.resume import (
    load_training_state,
    numpy_generator_state,
    restore_numpy_generator,
    save_training_state,
)
from medseg.train.sampler import PatchSampler, TrainingCase
from medseg.train.transfer import TransferReport
from medseg.train.validation import (
    epoch_seconds,
    predict_and_score,
    validation_dice,
    validation_due_now,
)


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
    transfer: TransferReport | None = None
    #: further models trained with the time a capped budget left (``fold_K_1``, ...)
    members: list[Path] = field(default_factory=list)
    #: the model whose validation chose the steps (fold "all" with ``held_out_stop`` only)
    search: TrainResult | None = None


class Trainer:
    """Trains one fold: sampler -> augmentation -> network -> loss, validation every epoch.

    Parameters
    ----------
    config
        The run's plan: network, recipe, budget.
    train_cases, val_cases
        Preprocessed cases with class-index targets.
    fold_dir
        Where weights, logs and the resume state go.
    device
        Compute device.
    quiet
        No progress output.
    init_from
        Weights (file, fold or run folder) to start from: every tensor that fits is loaded.
    freeze_encoder
        With ``init_from``: train the decoder only.
    """

    def __init__(
        self,
        config: Plan,
        train_cases: list[TrainingCase],
        val_cases: list[TrainingCase],
        fold_dir: Path,
        device: torch.device,
        quiet: bool = False,
        init_from: str | Path | None = None,
        freeze_encoder: bool = False,
    ) -> None:
        self.config = config
        self.train_cases = train_cases
        self.val_cases = val_cases
        self.fold_dir = fold_dir
        self.device = device
        self.ranks = distributed.current_ranks()
        self.quiet = quiet or not self.ranks.is_main
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        self.network = self.build_network().to(device)
        self.transfer: TransferReport | None = None
        if init_from is not None:
            self.transfer = transfer.load_compatible_weights(self.network, init_from)
            if freeze_encoder:
                self.transfer.frozen = transfer.freeze_encoder(self.network)
        # the module that trains: the network itself, or its DistributedDataParallel wrapper
        # (which averages the gradients over the ranks); weights are saved from the network
        self.model: nn.Module = self.network
        if self.ranks.distributed:
            ids = [device.index] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.network, device_ids=ids)
        # the weights validated and saved: an average of the network's (plan's ema_decay)
        self.average = weight_average(self.network, config.ema_decay) if config.ema_decay else None
        self.loss = self.build_loss()
        self.optimizer = self.build_optimizer()
        self.augmenter = self.build_augmenter()
        self.dtype = config.training_dtype(device)
        use_scaler = self.dtype == torch.float16 and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        spacing = _network_axes(_voxel_spacing(config), config.slice_axis)
        drawn = padded_patch_size(config.patch_size, config.augmentation, spacing)
        if config.slice_axis is not None:
            drawn = list(drawn)
            drawn.insert(config.slice_axis, 1)
        self.sampler = PatchSampler(
            train_cases, drawn, self.rng, config.foreground_fraction, config.slice_axis
        )
        # progress, restored by `resume`
        self.history: list[EpochRecord] = []
        self.iteration = 0
        self.best_score, self.best_epoch = -math.inf, 0
        self.smoothed: float | None = None
        self.budget = Budget(
            config.epochs,
            config.minutes,
            config.iterations_per_epoch,
            max_steps=config.max_iterations,
        )
        self._stop = StopRequest()  # Ctrl-C, taken between steps while `fit` runs

    # ---- hooks -------------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        """The network named by the plan (with deep supervision heads if it says so)."""
        return network_for(self.config)

    def build_loss(self) -> nn.Module:
        """Dice + cross-entropy, at every output scale of a deeply supervised network."""
        if self.config.regions:
            membership = torch.from_numpy(self.config.region_membership())
            return DeepSupervisionLoss(RegionDiceBCELoss(membership).to(self.device))
        ignore = IGNORE_CLASS if self.config.ignore_label is not None else None
        return DeepSupervisionLoss(DiceCELoss(ignore_index=ignore))

    def build_optimizer(self) -> torch.optim.Optimizer:
        """SGD with Nesterov momentum (nnU-Net's choice, the default), or AdamW."""
        c = self.config
        parameters = transfer.trainable_parameters(self.network)
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                parameters,
                lr=c.learning_rate,
                momentum=c.momentum,
                nesterov=True,
                weight_decay=c.weight_decay,
            )
        return torch.optim.AdamW(parameters, lr=c.learning_rate, weight_decay=c.weight_decay)

    def build_augmenter(self) -> Augmenter:
        """The plan's augmentation, seeded from the run's seed."""
        c = self.config
        spacing = _network_axes(_voxel_spacing(c), c.slice_axis)
        return Augmenter(c.augmentation, c.dim, seed=c.seed, device=self.device, spacing=spacing)

    def learning_rate(self, fraction_done: float) -> float:
        """Polynomial decay (power 0.9) over the fraction of the budget spent."""
        return poly_learning_rate(self.config.learning_rate, fraction_done)

    def train_step(self, image: torch.Tensor, target: torch.Tensor) -> float:
        """One optimisation step on a batch (the network under autocast in
        `Plan.training_dtype`, with gradient scaling for float16; the loss in float32);
        returns the loss."""
        self.network.train()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.dtype):
            outputs = self.model(image)
        loss = self.loss(outputs, target)  # in float32 (`DeepSupervisionLoss`)
        clip = self.config.gradient_clip
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if clip:
                nn.utils.clip_grad_norm_(self.network.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(self.network.parameters(), clip)
            self.optimizer.step()
        if self.average is not None:
            self.average.update_parameters(self.network)
        return float(loss.detach())

    @torch.no_grad()
    def validation_step(self) -> dict[int, float]:
        """Mean Dice per foreground class over the validation cases (NaN-free classes only),
        of the weights that are saved (`evaluated`)."""
        network = self.evaluated
        network.eval()
        c = self.config
        scores: dict[int, list[float]] = {k: [] for k in range(1, len(c.output_names) + 1)}
        for case in self.val_cases:
            image = torch.from_numpy(case.image).to(self.device)
            # Tiles without overlap: a fraction of the cost of the final 50% overlap, and
            # close enough to rank epochs.
            per_pass = windows_per_pass(c.dim, c.batch_size, image.device)
            probs = predict_volume(
                network, image, c.patch_size, per_pass, c.slice_axis, overlap=0.0,
                activation=c.activation, dtype=self.dtype,
            ).cpu().numpy()  # fmt: skip
            for k, value in validation_dice(c, case.target, probs).items():
                if not math.isnan(value):
                    scores[k].append(value)
        return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}

    # ---- state -------------------------------------------------------------------------
    @property
    def evaluated(self) -> nn.Module:
        """The network whose weights are validated and saved: the moving average of the
        weights with the plan's ``ema_decay``, else the trained network itself."""
        return self.average.module if self.average is not None else self.network

    def _budget_left(self) -> bool:
        """Whether another epoch fits: epochs left, or time for one like the last, with a
        validation (`epoch_seconds`)."""
        last = epoch_seconds(self.history) if self.history else 0.0
        return distributed.agree(self.budget.epoch_left(len(self.history), last))

    def _patience_spent(self) -> bool:
        """Whether the plan's ``early_stop_patience`` validations have passed since the best
        epoch without a better smoothed Dice, the last of them ``early_stop_decline`` or more
        under the best (never without validation cases)."""
        patience = self.config.early_stop_patience
        if patience is None or not self.val_cases:
            return False
        later = [
            r.val_dice_smoothed for r in self.history if r.epoch > self.best_epoch and r.val_dice
        ]
        return early_stop_due(self.best_score, later, patience, self.config.early_stop_decline)

    def _validation_due(self) -> bool:
        """Whether the epoch just trained validates: every epoch of an epoch budget (which
        stays reproducible); by time, see `validation_due_now`."""
        if not self.budget.by_time or not self.val_cases:
            return True
        return validation_due_now(self.history, self.budget, self.config.validation_share)

    def training_state(self) -> dict[str, object]:
        """Everything `resume` needs, as tensors and plain containers."""
        state: dict[str, object] = {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "augmenter": self.augmenter.state_dict(),
            "sampler_rng": numpy_generator_state(self.rng),
            "torch_rng": torch.get_rng_state(),
            "iteration": self.iteration,
            "seconds": self.budget.elapsed(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "smoothed": self.smoothed if self.smoothed is not None else math.nan,
            "history": [r.to_dict() for r in self.history],
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.average is not None:
            state["average"] = self.average.state_dict()
        return state

    def resume(self) -> None:
        """Continue from the fold's last saved epoch (``training_state.pt``)."""
        remove_stale_temporaries(self.fold_dir)
        state = load_training_state(self.fold_dir, self.device)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.augmenter.load_state_dict(state["augmenter"])
        restore_numpy_generator(self.rng, state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.average is not None and "average" in state:
            self.average.load_state_dict(state["average"])
        self.iteration = int(state["iteration"])
        self.budget.seconds_before = float(state["seconds"])
        self.best_score, self.best_epoch = float(state["best_score"]), int(state["best_epoch"])
        smoothed = float(state["smoothed"])
        self.smoothed = None if math.isnan(smoothed) else smoothed
        self.history = [EpochRecord.from_dict(r) for r in state["history"]]

    # ---- the loop ------------------------------------------------------------------------
    def _train_epoch(self, advance: Callable[[], None]) -> tuple[float, float, float, float]:
        """``iterations_per_epoch`` steps; returns the mean loss, the last learning rate and
        the seconds spent drawing and augmenting batches and in training steps."""
        c = self.config
        losses, lr = [], c.learning_rate
        data_seconds = step_seconds = 0.0
        for _ in range(c.iterations_per_epoch):
            lr = self.learning_rate(self.budget.fraction_done(self.iteration))
            lr = distributed.from_rank_zero(lr) if self.budget.by_time else lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            start = time.perf_counter()
            image, target = self.sampler.sample(c.batch_size)
            image, target = image.to(self.device), target.to(self.device)
            image, target = self.augmenter(image, target, output_size=c.patch_size)
            if self.ranks.distributed:  # every rank drew the global batch: train on a share
                share = self.ranks.share(c.batch_size)
                image, target = image[share], target[share]
            drawn = time.perf_counter()
            losses.append(self.train_step(image, target))
            data_seconds += drawn - start
            step_seconds += time.perf_counter() - drawn
            self.iteration += 1
            advance()
            self._stop.check()
        loss = distributed.mean_over_ranks(float(np.mean(losses)))
        return loss, lr, data_seconds, step_seconds

    def _end_epoch(self, record: EpochRecord, tensorboard: TensorBoardWriter) -> None:
        """Log the epoch, save latest (and best) weights and the resume state (rank 0)."""
        if not self.ranks.is_main:
            return
        meta = {"epoch": str(record.epoch), "val_dice_mean": f"{record.val_dice_mean:.6f}"}
        save_weights(self.evaluated, self.fold_dir / LATEST_WEIGHTS, meta)
        score = -1.0 if math.isnan(record.val_dice_smoothed) else record.val_dice_smoothed
        if score > self.best_score or not self.val_cases:  # without validation: the latest
            self.best_score, self.best_epoch = score, record.epoch
            save_weights(self.evaluated, self.fold_dir / BEST_WEIGHTS, meta)
        write_logs(self.history, self.config.output_names, self.fold_dir)
        tensorboard.add(record)
        save_training_state(self.fold_dir, self.training_state())

    def _validate(self) -> tuple[float, dict[str, float], float]:
        if not self.ranks.is_main:  # rank 0 validates and chooses the best epoch
            return math.nan, {}, math.nan
        val = self.validation_step()
        defined = [v for v in val.values() if not math.isnan(v)]
        mean = float(np.mean(defined)) if defined else math.nan
        if not math.isnan(mean):
            a = self.config.selection_smoothing
            self.smoothed = mean if self.smoothed is None else a * self.smoothed + (1 - a) * mean
        smoothed = self.smoothed if self.smoothed is not None else math.nan
        names = self.config.output_names
        return mean, {names[k - 1]: v for k, v in val.items()}, smoothed

    def fit(self) -> TrainResult:
        """Train within the configured budget (epochs or minutes), from scratch or from where
        `resume` left off.

        After every epoch: latest weights, best weights (by the moving average of the mean
        validation Dice), ``log.csv``, ``curves.png`` and the resume state. Ctrl-C is taken
        at the next step boundary (a second one at once): the latest weights are saved and
        the interrupt re-raised.
        """
        c = self.config
        if c.epochs is None and c.minutes is None:
            raise ValueError("set a budget: epochs or minutes")
        self.fold_dir.mkdir(parents=True, exist_ok=True)
        self.budget.restart()
        by_time = self.budget.by_time
        total = int(c.minutes * 60) if by_time else c.epochs * c.iterations_per_epoch  # type: ignore[operator]
        tensorboard = TensorBoardWriter(self.fold_dir / "tensorboard", self.ranks.is_main)
        with make_progress(self.quiet) as progress, deferred_interrupt() as self._stop:
            task = progress.add_task("training", total=total, status="")

            def advance() -> None:
                done = self.budget.elapsed() if by_time else self.iteration
                progress.update(task, completed=min(done, total))

            advance()
            try:
                while self._budget_left():
                    epoch = len(self.history) + 1
                    loss, lr, data_seconds, step_seconds = self._train_epoch(advance)
                    validation_start = time.perf_counter()
                    mean, labels, smoothed = math.nan, {}, math.nan
                    if self._validation_due():
                        mean, labels, smoothed = self._validate()
                    validation_seconds = time.perf_counter() - validation_start
                    record = EpochRecord(
                        epoch, self.iteration, round(self.budget.elapsed(), 2), lr, loss, mean,
                        labels, smoothed, data_seconds, step_seconds, validation_seconds,
                    )  # fmt: skip
                    self.history.append(record)
                    self._end_epoch(record, tensorboard)
                    status = f"loss {loss:.3f}" + (f"  val Dice {mean:.3f}" if labels else "")
                    progress.update(task, status=status)
                    seconds = self.budget.elapsed()
                    log_line(f"epoch {epoch}: {status}  ({seconds:.0f} s)", self.quiet)
                    self._stop.check()
                    if c.early_stop_patience and distributed.agree(self._patience_spent()):
                        log_line(f"stopped: no better validation since epoch {self.best_epoch}",
                                 self.quiet)  # fmt: skip
                        break
            except KeyboardInterrupt:
                if not self.ranks.is_main:
                    raise
                interrupted = {"interrupted": "1"}
                save_weights(self.evaluated, self.fold_dir / LATEST_WEIGHTS, interrupted)
                if not (self.fold_dir / BEST_WEIGHTS).exists():
                    save_weights(self.evaluated, self.fold_dir / BEST_WEIGHTS, interrupted)
                write_logs(self.history, c.output_names, self.fold_dir)
                raise
            finally:
                tensorboard.close()
        return TrainResult(
            self.fold_dir,
            len(self.history),
            self.best_epoch,
            self.best_score,
            self.budget.elapsed(),
            self.history,
            transfer=self.transfer,
        )

    def predict_validation(self, out_dir: Path) -> Evaluation:
        """Predict and score every validation case with the best weights, as `medseg predict`
        would (see `predict_and_score`; in the training's precision, what `medseg predict`
        picks by default on the same device); writes into ``out_dir``."""
        best = self.fold_dir / BEST_WEIGHTS
        if best.is_file():
            load_weights(self.network, best, self.device)
        return predict_and_score(
            self.network, self.config, self.val_cases, self.device, out_dir, self.dtype
        )


def _voxel_spacing(plan: Plan) -> list[float]:
    """The spacing of the voxels the network trains on: the preprocessing's target spacing,
    or the data's median spacing for a plan without preprocessing."""
    if plan.preprocessing is not None:
        return list(plan.preprocessing.target_spacing)
    return plan.median_spacing


def _network_axes(values: list[float], slice_axis: int | None) -> list[float]:
    """Per-axis values of the data, without the sliced axis of a 2D network on 3D data."""
    return [v for axis, v in enumerate(values) if axis != slice_axis]
