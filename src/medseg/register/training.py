"""`medseg train-registration`: train the learned registration network on pairs drawn from a
dataset's training cases (or each case against an atlas), unsupervised (local NCC plus a
smoothness penalty) with a soft Dice term when labels exist; validated every epoch on fixed
pairs of the fold's validation cases (Dice before and after, folding)."""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medseg.datasets import (
    DatasetFolder,
    open_dataset,
    read_case_image,
    read_label,
    train_val_split,
)
from medseg.errors import ConfigError, RunFolderError, located
from medseg.io import Image, read_image, write_text_atomic
from medseg.nn import REGISTRATION_FEATURES, registration_unet, save_weights
from medseg.progress import log_line, make_progress
from medseg.register.deformable import smoothness_penalty, warp_by_index
from medseg.register.jacobian import folding_percent, jacobian_determinant
from medseg.register.learned import (
    CONFIG_FILE,
    MODEL_FILE,
    LearnedConfig,
    centred_grid,
    displacement_from_velocity,
    image_centre,
    network_input,
    one_hot,
    predict_velocity,
    soft_dice,
)
from medseg.register.similarity import lncc
from medseg.register.transforms import Transform
from medseg.register.warp import warp_labels

LOG_FILE = "log.csv"
STEPS_PER_EPOCH = 50
VALIDATION_PAIRS = 16
#: The network's grid is at most this many voxels; coarser spacing beyond it.
MAX_GRID_VOXELS = 96**3
#: Grid sizes are multiples of the U-Net's total stride on the half-resolution pair.
GRID_MULTIPLE = 2 ** len(REGISTRATION_FEATURES)


@dataclass
class CaseStack:
    """Cases resampled onto the network's grid, each centred on its own image."""

    ids: list[str]
    images: torch.Tensor  # (N, 1, X, Y, Z) float32, robustly scaled
    labels: torch.Tensor | None  # (N, 1, X, Y, Z) integer labels, or None


@dataclass
class RegistrationTraining:
    """A finished training: its configuration and one row of `log.csv` per epoch."""

    config: LearnedConfig
    history: list[dict[str, float]] = field(default_factory=list)


def plan_grid(images: list[Image]) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """The network's grid: the median voxel size along each world axis, and a shape (a
    multiple of the U-Net's stride) covering the largest image, coarsened to at most
    `MAX_GRID_VOXELS` voxels."""
    spacings = np.array([np.linalg.norm(im.affine[:3, :3], axis=1) for im in images])
    spacing = np.median(spacings, axis=0)
    extents = []
    for image in images:
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in image.spatial_shape])).reshape(3, -1)
        world = image.affine[:3, :3] @ corners
        extents.append(world.max(axis=1) - world.min(axis=1))
    extent = np.max(extents, axis=0) + spacing
    scale = max(1.0, (np.prod(extent / spacing) / MAX_GRID_VOXELS) ** (1 / 3))
    while True:
        shape = [
            GRID_MULTIPLE * math.ceil(e / (s * scale) / GRID_MULTIPLE)
            for e, s in zip(extent, spacing)
        ]
        if np.prod(shape) <= MAX_GRID_VOXELS:
            break
        scale *= 1.05
    return tuple(float(s * scale) for s in spacing), tuple(int(n) for n in shape)  # type: ignore[return-value]


def stack_cases(
    items: list[tuple[str, Image, np.ndarray | None]],
    spacing: tuple[float, ...],
    shape: tuple[int, ...],
) -> CaseStack:
    """Resample images (and labels) onto grids of ``spacing`` and ``shape`` centred on each."""
    images, labels = [], []
    for _, image, label in items:
        grid = centred_grid(image_centre(image), spacing, shape)
        images.append(network_input(image, grid, shape, Transform()))
        if label is not None:
            source = Image(label[None], image.affine)
            target = Image(np.zeros((1, *shape), np.uint8), grid)
            labels.append(warp_labels(source, target, Transform(), "nearest").array[0])
    stacked_labels = None
    if labels and len(labels) == len(items):
        stacked_labels = torch.from_numpy(np.stack(labels).astype(np.int32))[:, None]
    return CaseStack(
        [case_id for case_id, _, _ in items],
        torch.from_numpy(np.stack(images))[:, None],
        stacked_labels,
    )


def _read_cases(
    dataset: DatasetFolder, ids: list[str], quiet: bool
) -> list[tuple[str, Image, np.ndarray | None]]:
    items = []
    with make_progress(quiet) as progress:
        task = progress.add_task("reading cases", total=len(ids))
        for case_id in ids:
            case = dataset.case(case_id)
            image = read_case_image(case)
            label = None
            if case.label_path is not None:
                label = read_label(case.label_path, image, dataset.spec.label_values)
            items.append((case_id, Image(image.array[:1], image.affine), label))
            progress.advance(task)
    return items


def _learning_rate(base: float, fraction: float) -> float:
    return base * (1 - min(fraction, 0.999)) ** 0.9


def _pairs(
    n_fixed: int, n_moving: int, count: int, rng: np.random.Generator, atlas: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Random (fixed, moving) indices: two different cases, or the atlas and a case."""
    fixed = np.zeros(count, int) if atlas else rng.integers(0, n_fixed, count)
    moving = rng.integers(0, n_moving, count)
    if not atlas and n_moving > 1:  # never a case with itself
        same = moving == fixed
        moving[same] = (moving[same] + rng.integers(1, n_moving, same.sum())) % n_moving
    return fixed, moving


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


def _validate(
    network: torch.nn.Module, data: _Data, spacing: tuple[float, ...], device: torch.device
) -> dict[str, float]:
    """Mean local NCC, Dice (when labelled) before and after, and folding on the validation
    pairs."""
    network.eval()
    before, after, folding, sim_before, sim_after = [], [], [], [], []
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


def _write_log(run_dir: Path, history: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[-1]))
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(run_dir / LOG_FILE, buffer.getvalue())


@dataclass
class _Data:
    """The stacks training draws pairs from and the validation pairs."""

    fixed: CaseStack  # the training cases, or the atlas
    moving: CaseStack
    val_fixed: CaseStack  # the validation cases, or the atlas
    val_moving: CaseStack
    val_pairs: list[tuple[int, int]]
    values: list[int]  # foreground labels scored and used by the Dice term; [] without labels
    atlas: bool


def _prepare(
    dataset_dir: str | Path,
    fold: int,
    atlas: str | Path | None,
    atlas_labels: str | Path | None,
    quiet: bool,
) -> tuple[_Data, tuple[float, float, float], tuple[int, int, int]]:
    dataset = open_dataset(dataset_dir)
    train_ids, val_ids = train_val_split([c.case_id for c in dataset.training], fold)
    if atlas is None and len(val_ids) < 2:
        raise ConfigError(f"{dataset_dir}: too few cases for validation pairs in fold {fold}")
    train_items = _read_cases(dataset, train_ids, quiet)
    val_items = _read_cases(dataset, val_ids, quiet)
    spacing, shape = plan_grid([image for _, image, _ in train_items])
    moving = stack_cases(train_items, spacing, shape)
    val_moving = stack_cases(val_items, spacing, shape)
    if atlas is None:
        fixed, val_fixed = moving, val_moving
        n = len(val_ids)
        val_pairs = [(k, (k + 1) % n) for k in range(min(VALIDATION_PAIRS, n))]
    else:
        atlas_image = read_image(atlas)
        atlas_label = None
        if atlas_labels is not None:
            atlas_label = read_label(Path(atlas_labels), atlas_image, dataset.spec.label_values)
        single = Image(atlas_image.array[:1], atlas_image.affine)
        fixed = val_fixed = stack_cases([("atlas", single, atlas_label)], spacing, shape)
        val_pairs = [(0, j) for j in range(min(VALIDATION_PAIRS, len(val_ids)))]
    values = []
    if fixed.labels is not None and moving.labels is not None:
        values = sorted(int(v) for v in dataset.spec.label_values if int(v) != 0)
    data = _Data(fixed, moving, val_fixed, val_moving, val_pairs, values, atlas is not None)
    return data, spacing, shape


def _labels(stack: CaseStack, index: np.ndarray, device: torch.device) -> torch.Tensor | None:
    return None if stack.labels is None else stack.labels[index].to(device)


def train_registration(
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    atlas: str | Path | None = None,
    atlas_labels: str | Path | None = None,
    epochs: int | None = None,
    minutes: float | None = None,
    label_weight: float = 1.0,
    smoothness: float = 1.0,
    fold: int = 0,
    batch_size: int = 2,
    learning_rate: float = 1e-3,
    seed: int = 0,
    device: torch.device | None = None,
    quiet: bool = False,
) -> RegistrationTraining:
    """Train a registration network on the fold's training cases and keep the weights of the
    epoch with the best validation Dice (or local NCC without labels) in ``out_dir``.

    Pairs are two different training cases, or, with ``atlas``, the atlas (fixed) and a case
    (moving). The loss is local NCC + ``smoothness`` x the velocity's squared gradient +
    ``label_weight`` x (1 - soft Dice of the warped labels) when labels exist. Stops after
    ``epochs`` epochs of `STEPS_PER_EPOCH` steps or after ``minutes`` (default 20 minutes)."""
    device = device or torch.device("cpu")
    run_dir = Path(out_dir)
    if (run_dir / CONFIG_FILE).exists():
        raise RunFolderError(
            located(run_dir, "already holds a registration model; choose another --out")
        )
    if epochs is None and minutes is None:
        minutes = 20.0
    data, spacing, shape = _prepare(dataset_dir, fold, atlas, atlas_labels, quiet)
    weight = label_weight if data.values else 0.0
    config = LearnedConfig(
        grid_shape=shape,
        spacing=spacing,
        features=REGISTRATION_FEATURES,
        smoothness=smoothness,
        label_weight=weight,
        labels=data.values,
        dataset=str(Path(dataset_dir).resolve()),
        atlas=str(Path(atlas).resolve()) if atlas else None,
        fold=fold,
    )
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network = registration_unet(3, REGISTRATION_FEATURES).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    run_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    best = -math.inf
    steps = 0
    start = time.perf_counter()
    budget = None if minutes is None else minutes * 60
    total_steps = None if epochs is None else epochs * STEPS_PER_EPOCH

    def finished() -> bool:
        return bool(
            (budget and time.perf_counter() - start >= budget)
            or (total_steps and steps >= total_steps)
        )

    while not finished():
        losses = []
        with make_progress(quiet) as progress:
            task = progress.add_task(f"epoch {len(history) + 1}", total=STEPS_PER_EPOCH)
            for _ in range(STEPS_PER_EPOCH):
                elapsed = time.perf_counter() - start
                fraction = elapsed / budget if budget else steps / total_steps  # type: ignore[operator]
                for group in optimizer.param_groups:
                    group["lr"] = _learning_rate(learning_rate, fraction)
                f, m = _pairs(
                    len(data.fixed.ids), len(data.moving.ids), batch_size, rng, data.atlas
                )
                loss = _step_loss(
                    network,
                    data.fixed.images[f].to(device),
                    data.moving.images[m].to(device),
                    _labels(data.fixed, f, device),
                    _labels(data.moving, m, device),
                    data.values,
                    smoothness,
                    weight,
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                steps += 1
                progress.update(task, advance=1, status=f"loss {np.mean(losses):.4f}")
                if finished():
                    break
        row = {
            "epoch": len(history) + 1,
            "steps": steps,
            "seconds": round(time.perf_counter() - start, 1),
            "learning_rate": optimizer.param_groups[0]["lr"],
            "loss": float(np.mean(losses)),
        }
        row.update(_validate(network, data, spacing, device))
        history.append(row)
        score = row.get("dice_after", row["lncc_after"])
        if score > best:
            best = score
            save_weights(network, run_dir / MODEL_FILE)
            config.training = {"best_epoch": row["epoch"], "best_validation": dict(row)}
        config.training.update({"epochs": row["epoch"], "steps": steps, "seconds": row["seconds"]})
        config.write(run_dir)
        _write_log(run_dir, history)
        log_line(_epoch_line(row), quiet)
    return RegistrationTraining(config, history)


def _epoch_line(row: dict[str, float]) -> str:
    line = (
        f"epoch {row['epoch']}: loss {row['loss']:.4f}, "
        f"val LNCC {row['lncc_before']:.3f} -> {row['lncc_after']:.3f}"
    )
    if "dice_after" in row:
        line += f", Dice {row['dice_before']:.3f} -> {row['dice_after']:.3f}"
    return line + f", folding {row['folding_percent']:.3f} %"
