"""`medseg train-registration`: train the learned registration network on pairs drawn from a
dataset's training cases (or each case against an atlas), unsupervised (local NCC plus a
smoothness penalty) with a soft Dice term when labels exist; validated every epoch on fixed
pairs of the fold's validation cases (Dice before and after, folding).

The budget, the learning-rate schedule, ``log.csv`` and Ctrl-C (taken at a step boundary) are
those of segmentation training (`medseg.loop`); the data lives in `register/training_data.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medseg.device import resolve_device
from medseg.errors import ConfigError, RunFolderError, located
from medseg.io.outputs import prepare_output_folder
from medseg.loop import Budget, StopRequest, deferred_interrupt, poly_learning_rate, write_log_rows
from medseg.nn import REGISTRATION_FEATURES, registration_unet, save_weights
from medseg.progress import log_line, make_progress
from medseg.register.deformable import smoothness_penalty, warp_by_index
from medseg.register.jacobian import folding_percent, jacobian_determinant
from medseg.register.learned import (
    CONFIG_FILE,
    MODEL_FILE,
    LearnedConfig,
    displacement_from_velocity,
    one_hot,
    predict_velocity,
    soft_dice,
)
from medseg.register.similarity import lncc
from medseg.register.training_data import PairData, prepare_pairs

STEPS_PER_EPOCH = 50
#: The budget when neither epochs nor minutes are given.
DEFAULT_MINUTES = 20.0


@dataclass(frozen=True)
class RegistrationTrainingOptions:
    """How `train_registration` trains; the defaults are those of `medseg train-registration`.

    Attributes
    ----------
    atlas
        An image that is the fixed image of every pair (default: pairs of two training cases).
    atlas_labels
        The atlas's label map, for the Dice term (needs ``atlas``).
    epochs, minutes
        The budget: epochs of `STEPS_PER_EPOCH` steps, or wall-clock minutes (one of the two;
        default 20 minutes).
    label_weight
        Weight of the soft Dice term when labels exist (0: unsupervised).
    smoothness
        Weight of the velocity field's smoothness penalty.
    fold
        The validation fold of the case-wise 5-fold split.
    batch_size
        Pairs per step.
    learning_rate
        Adam's initial learning rate, decayed polynomially to 0 over the budget.
    seed
        Seeds the network's initialisation and the pairs drawn.
    device
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see `medseg.device.resolve_device`).
    quiet
        No progress output.

    Examples
    --------
    >>> RegistrationTrainingOptions(epochs=40, label_weight=0).minutes is None
    True
    >>> RegistrationTrainingOptions(atlas_labels="atlas_seg.nii.gz")
    Traceback (most recent call last):
    ...
    medseg.errors.ConfigError: --atlas-labels needs --atlas
    """

    atlas: str | Path | None = None
    atlas_labels: str | Path | None = None
    epochs: int | None = None
    minutes: float | None = None
    label_weight: float = 1.0
    smoothness: float = 1.0
    fold: int = 0
    batch_size: int = 2
    learning_rate: float = 1e-3
    seed: int = 0
    device: str = "auto"
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.atlas_labels is not None and self.atlas is None:
            raise ConfigError("--atlas-labels needs --atlas")
        if self.epochs is not None and self.minutes is not None:
            raise ConfigError("give either --epochs or --minutes, not both")


@dataclass
class RegistrationTraining:
    """A finished training: its configuration and one row of `log.csv` per epoch."""

    config: LearnedConfig
    history: list[dict[str, float]] = field(default_factory=list)


def _step_loss(
    network: torch.nn.Module,
    fixed: torch.Tensor,
    moving: torch.Tensor,
    fixed_labels: torch.Tensor | None,
    moving_labels: torch.Tensor | None,
    values: list[int],
    smoothness: float,
    label_weight: float,
) -> torch.Tensor:
    """Local NCC + smoothness (+ label_weight x (1 - soft Dice)) of one batch of pairs."""
    velocity = predict_velocity(network, fixed, moving)
    displacement = displacement_from_velocity(velocity, fixed.shape[2:])
    loss = lncc(fixed, warp_by_index(moving, displacement)) + smoothness * smoothness_penalty(
        velocity
    )
    if label_weight > 0 and fixed_labels is not None and moving_labels is not None and values:
        warped = warp_by_index(one_hot(moving_labels, values), displacement)
        loss = loss + label_weight * (1 - soft_dice(one_hot(fixed_labels, values), warped))
    return loss


def _dice(reference: torch.Tensor, labels: torch.Tensor, values: list[int]) -> list[float]:
    scores = []
    for value in values:
        a, b = reference == value, labels == value
        total = int(a.sum() + b.sum())
        if total:
            scores.append(2 * int((a & b).sum()) / total)
    return scores


def _validate(network: torch.nn.Module, data: PairData, device: torch.device) -> dict[str, float]:
    """Mean local NCC, Dice (when labelled) before and after, and folding on the validation
    pairs."""
    network.eval()
    before, after, folding, sim_before, sim_after = [], [], [], [], []
    spacing = data.spacing
    grid = np.diag([*spacing, 1.0])
    with torch.no_grad():
        for i, j in data.val_pairs:
            f = data.val_fixed.images[i : i + 1].to(device)
            m = data.val_moving.images[j : j + 1].to(device)
            displacement = displacement_from_velocity(predict_velocity(network, f, m), f.shape[2:])
            sim_before.append(-float(lncc(f, m)))
            sim_after.append(-float(lncc(f, warp_by_index(m, displacement))))
            world = displacement[0].cpu().numpy() * np.asarray(spacing)[:, None, None, None]
            folding.append(folding_percent(jacobian_determinant(world, grid)))
            if data.values:
                fl = data.val_fixed.labels[i : i + 1].to(device)  # type: ignore[index]
                ml = data.val_moving.labels[j : j + 1].to(device)  # type: ignore[index]
                warped = warp_by_index(ml.float(), displacement, mode="nearest").long()
                before.extend(_dice(fl, ml, data.values))
                after.extend(_dice(fl, warped, data.values))
    network.train()
    row = {
        "lncc_before": float(np.mean(sim_before)),
        "lncc_after": float(np.mean(sim_after)),
        "folding_percent": float(np.mean(folding)),
    }
    if after:
        row["dice_before"] = float(np.mean(before))
        row["dice_after"] = float(np.mean(after))
    return row


@dataclass
class _Steps:
    """The optimisation: network, optimiser and the pairs drawn, within the budget."""

    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    data: PairData
    options: RegistrationTrainingOptions
    label_weight: float  # 0 without labels
    budget: Budget
    device: torch.device
    rng: np.random.Generator
    done: int = 0

    def epoch(self, epoch: int, stop: StopRequest) -> float:
        """`STEPS_PER_EPOCH` steps, fewer if the budget runs out; returns their mean loss."""
        losses: list[float] = []
        with make_progress(self.options.quiet) as progress:
            task = progress.add_task(f"epoch {epoch}", total=STEPS_PER_EPOCH)
            for _ in range(STEPS_PER_EPOCH):
                losses.append(self.step())
                progress.update(task, advance=1, status=f"loss {np.mean(losses):.4f}")
                stop.check()
                if self.budget.spent(self.done):
                    break
        return float(np.mean(losses))

    def step(self) -> float:
        """One Adam step on a batch of random pairs; returns the loss."""
        fraction = self.budget.fraction_done(self.done)
        for group in self.optimizer.param_groups:
            group["lr"] = poly_learning_rate(self.options.learning_rate, fraction)
        data, device = self.data, self.device
        f, m = data.draw_pairs(self.options.batch_size, self.rng)
        loss = _step_loss(
            self.network,
            data.fixed.images[f].to(device),
            data.moving.images[m].to(device),
            data.fixed.labels_at(f, device),
            data.moving.labels_at(m, device),
            data.values,
            self.options.smoothness,
            self.label_weight,
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.done += 1
        return float(loss.detach())


def train_registration(
    dataset_dir: str | Path,
    run_dir: str | Path,
    options: RegistrationTrainingOptions | None = None,
) -> RegistrationTraining:
    """Train a registration network on the fold's training cases and keep the weights of the
    epoch with the best validation Dice (or local NCC without labels) in ``run_dir``.

    Pairs are two different training cases, or, with ``options.atlas``, the atlas (fixed) and
    a case (moving). The loss is local NCC + ``smoothness`` x the velocity's squared gradient
    + ``label_weight`` x (1 - soft Dice of the warped labels) when labels exist. After every
    epoch ``model.safetensors`` (when the epoch is the best), ``registration.json`` and
    ``log.csv`` are rewritten. Ctrl-C is taken at the next step boundary: the files of the
    last finished epoch stay as they are and the interrupt is re-raised.

    Examples
    --------
    >>> options = RegistrationTrainingOptions(minutes=10)
    >>> result = train_registration("Dataset004_Hippocampus", "runs/reg", options)  # doctest: +SKIP
    """
    prepare_output_folder(run_dir)
    options = options or RegistrationTrainingOptions()
    device = resolve_device(options.device)
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        raise RunFolderError(
            located(run_dir, "already holds a registration model; choose another --out")
        )
    data = prepare_pairs(
        dataset_dir, options.fold, options.atlas, options.atlas_labels, options.quiet
    )
    config = _learned_config(dataset_dir, options, data)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    network = registration_unet(3, REGISTRATION_FEATURES).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=options.learning_rate)
    run_dir.mkdir(parents=True, exist_ok=True)
    minutes = options.minutes
    if options.epochs is None and minutes is None:
        minutes = DEFAULT_MINUTES
    budget = Budget(options.epochs, minutes, STEPS_PER_EPOCH)
    steps = _Steps(network, optimizer, data, options, config.label_weight, budget, device, rng)
    history: list[dict[str, float]] = []
    best = -math.inf
    with deferred_interrupt() as stop:
        while not budget.spent(steps.done):
            epoch = len(history) + 1
            loss = steps.epoch(epoch, stop)
            row = {
                "epoch": epoch,
                "steps": steps.done,
                "seconds": round(budget.elapsed(), 1),
                "learning_rate": optimizer.param_groups[0]["lr"],
                "loss": loss,
            }
            row.update(_validate(network, data, device))
            history.append(row)
            score = row.get("dice_after", row["lncc_after"])
            if score > best:
                best = score
                save_weights(network, run_dir / MODEL_FILE)
                config.training = {"best_epoch": epoch, "best_validation": dict(row)}
            config.training.update(
                {"epochs": epoch, "steps": steps.done, "seconds": row["seconds"]}
            )
            config.write(run_dir)
            write_log_rows(run_dir, history)
            log_line(_epoch_line(row), options.quiet)
            stop.check()
    return RegistrationTraining(config, history)


def _learned_config(
    dataset_dir: str | Path, options: RegistrationTrainingOptions, data: PairData
) -> LearnedConfig:
    """What the model folder records: the grid, the loss weights and where the pairs came
    from (the Dice term's weight is 0 without labels)."""
    return LearnedConfig(
        grid_shape=data.shape,
        spacing=data.spacing,
        features=REGISTRATION_FEATURES,
        smoothness=options.smoothness,
        label_weight=options.label_weight if data.values else 0.0,
        labels=data.values,
        dataset=str(Path(dataset_dir).resolve()),
        atlas=str(Path(options.atlas).resolve()) if options.atlas else None,
        fold=options.fold,
    )


def _epoch_line(row: dict[str, float]) -> str:
    line = (
        f"epoch {row['epoch']}: loss {row['loss']:.4f}, "
        f"val LNCC {row['lncc_before']:.3f} -> {row['lncc_after']:.3f}"
    )
    if "dice_after" in row:
        line += f", Dice {row['dice_before']:.3f} -> {row['dice_after']:.3f}"
    return line + f", folding {row['folding_percent']:.3f} %"
