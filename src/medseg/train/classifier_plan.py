"""Planning a classifier: input size, batch, network width and recipe for the data and budget.

- input size: the most common image size, shrunk to fit `MAX_SIDE` per axis;
- stages: four (three for images under 32 voxels a side), each halving the size;
- and if even the narrower network would train fewer than `MIN_STEPS` steps in the budget,
  the input size is halved (to at least `MIN_SIDE` a side) until it does;
- width: the wider of two networks when, timed on this device, it still trains
  `WIDE_MIN_STEPS` steps in the budget, else the narrower (an epoch budget takes the narrower);
- batch: 64 images in 2D, 8 volumes in 3D, halved for large inputs;
- with ``--init-from RUN``: RUN's encoder (a segmentation run's U-Net encoder or another
  classifier's) at the data's input size, in place of the two rules above;
- recipe: AdamW and the short augmentation recipe of segmentation (no mirroring, 2D rotations
  within 30 degrees): chest X-rays and most medical images arrive the right way round.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError

from medseg.augment import AugmentationSettings, ElasticSettings
from medseg.datasets.classification import ClassificationDataset
from medseg.errors import ConfigError, first_invalid_field, located
from medseg.runs import Decision
from medseg.runs.classifier_plan import ClassifierPlan, is_classifier_run, network_for_classifier
from medseg.runs.plan import PLAN_FILE, Plan
from medseg.train.recipe import recipe_for_steps

#: The largest input side (voxels) per dimension; larger images are shrunk to it.
MAX_SIDE = {2: 256, 3: 128}
#: Below this many steps in the budget the input is shrunk (halved, to at least MIN_SIDE).
MIN_STEPS, MIN_SIDE = 1000, 16
#: The two widths the planner chooses between.
NARROW, WIDE = [16, 32, 64, 128], [32, 64, 128, 256]
_RECIPE = (
    "AdamW and segmentation's short augmentation recipe (no mirroring, 2D rotations within 30 "
    "degrees): medical images arrive the right way round"
)
#: The wide network is chosen only if it trains this many steps in the budget.
WIDE_MIN_STEPS = 3000


def plan_classifier(
    dataset: ClassificationDataset,
    images: list[np.ndarray],
    device: torch.device,
    minutes: float | None,
    seed: int,
    overrides: dict[str, object],
    encoder: tuple[dict[str, object], str] | None = None,
) -> ClassifierPlan:
    """The plan for ``dataset`` (its images already read), with ``overrides`` applied last;
    ``encoder`` is `transferred_encoder`'s architecture and reason, which replace the width
    and input-size rules."""
    dim = images[0].ndim - 1
    size, size_reason = _input_size(images, dim)
    large = int(np.prod(size)) > (128**2 if dim == 2 else 64**3)
    batch = (64 if dim == 2 else 8) // (2 if large else 1)
    recipe, _ = recipe_for_steps(1000)
    plan = ClassifierPlan(
        dim=dim,
        channel_names=dataset.spec.channel_names,
        class_names=dataset.spec.class_names,
        input_size=size,
        features=NARROW[: _stages(size)],
        batch_size=batch,
        augmentation=_short_augmentation(recipe["augmentation"]),
        seed=seed,
    )
    if encoder is None:
        plan, size_reason, narrow_steps = _fit_size(plan, device, minutes, size_reason)
        plan, width_reason, steps = _choose_width(plan, device, minutes, narrow_steps)
    else:
        plan = plan.model_copy(update=encoder[0])
        steps = None if minutes is None else minutes * 60 / _step_seconds(plan, device)
        width_reason = encoder[1] + ("" if steps is None else f" (~{steps:.0f} steps here)")
    if steps is not None:  # validate at least 20 times, never more often than every 10 steps
        interval = int(max(10, min(plan.steps_per_epoch, steps // 20)))
        plan = plan.model_copy(update={"steps_per_epoch": interval})
    decisions = [
        Decision(setting="input_size", value=plan.input_size, reason=size_reason),
        Decision(setting="features", value=plan.features, reason=width_reason),
        Decision(setting="recipe", value="adamw, short augmentation", reason=_RECIPE),
    ]
    plan = plan.model_copy(update={"decisions": decisions})
    return _with_overrides(plan, overrides)


def transferred_encoder(source: str | Path, dim: int) -> tuple[dict[str, object], str]:
    """The encoder of the run ``source`` (a run folder or one of its fold folders) as plan
    fields, and the reason to record: a segmentation run's U-Net encoder or another
    classifier's. Its ``dim`` must be the dataset's; the input channels may differ (the
    first convolution then starts afresh)."""
    source = Path(source)
    run_dir = source if (source / PLAN_FILE).is_file() else source.parent
    if not (run_dir / PLAN_FILE).is_file():
        problem = "--init-from: a classifier starts from a run folder (its plan names the encoder)"
        raise ConfigError(located(source, problem))
    if is_classifier_run(run_dir):
        other = ClassifierPlan.load(run_dir)
        fields = {k: getattr(other, k) for k in ("encoder", "features", "blocks", "strides",
                                                 "kernel_sizes")}  # fmt: skip
        source_dim = other.dim
    else:
        seg = Plan.load(run_dir)
        if seg.model != "unet":
            problem = "--init-from: only a plain U-Net's encoder fits (model unet)"
            raise ConfigError(located(run_dir, problem))
        fields = {"encoder": "unet", "features": seg.features, "strides": seg.strides,
                  "kernel_sizes": seg.kernel_sizes}  # fmt: skip
        source_dim = seg.dim
    if source_dim != dim:
        problem = f"--init-from: a {source_dim}D run, and the images are {dim}D"
        raise ConfigError(located(run_dir, problem))
    return fields, f"the encoder of {run_dir.name} (--init-from)"


def _short_augmentation(settings: object) -> AugmentationSettings:
    """The short segmentation recipe's augmentation without its elastic deformation, which
    was measured for segmentation only."""
    short = AugmentationSettings.model_validate(settings)
    return short.model_copy(update={"elastic": ElasticSettings()})


def _input_size(images: list[np.ndarray], dim: int) -> tuple[list[int], str]:
    shape, count = Counter(tuple(a.shape[1:]) for a in images).most_common(1)[0]
    scale = min(1.0, MAX_SIDE[dim] / max(shape))
    size = [max(8, round(s * scale)) for s in shape]
    reason = f"{count} of {len(images)} images are {list(shape)}"
    if scale < 1:
        reason += f", shrunk to at most {MAX_SIDE[dim]} per side"
    return size, reason


def _stages(size: list[int]) -> int:
    """Four stages, three for inputs under 32 voxels a side."""
    return 4 if min(size) >= 32 else 3


def _fit_size(
    plan: ClassifierPlan, device: torch.device, minutes: float | None, reason: str
) -> tuple[ClassifierPlan, str, float | None]:
    """Halve the input size (to at least `MIN_SIDE` a side) while the narrow network would
    train fewer than `MIN_STEPS` steps in the budget: a few dozen steps of a 64³ network
    learn less than a thousand of a 32³ one (AdrenalMNIST3D, bench/RESULTS.md). Returns the
    plan, why, and the steps its narrow network trains in the budget (None for epochs)."""
    if minutes is None:
        return plan, reason, None
    steps = minutes * 60 / _step_seconds(plan, device)
    while steps < MIN_STEPS and min(plan.input_size) >= 2 * MIN_SIDE:
        size = [s // 2 for s in plan.input_size]
        plan = plan.model_copy(update={"input_size": size, "features": NARROW[: _stages(size)]})
        steps = minutes * 60 / _step_seconds(plan, device)
        reason += f"; halved to {size} (~{steps:.0f} steps in {minutes:g} min, want {MIN_STEPS})"
    return plan, reason, steps


def _choose_width(
    plan: ClassifierPlan, device: torch.device, minutes: float | None, narrow_steps: float | None
) -> tuple[ClassifierPlan, str, float | None]:
    """The network width, why, and the steps it trains in the budget (None for epochs);
    ``narrow_steps`` are those of ``plan``'s narrow network, already timed."""
    if minutes is None or narrow_steps is None:
        return plan, "an epoch budget: the narrower network", None
    wide = plan.model_copy(update={"features": WIDE[: len(plan.features)]})
    steps = minutes * 60 / _step_seconds(wide, device)
    if steps >= WIDE_MIN_STEPS:
        return wide, f"the wider network trains ~{steps:.0f} steps in {minutes:g} min here", steps
    reason = f"the wider network would train ~{steps:.0f} steps (< {WIDE_MIN_STEPS}) here"
    return plan, reason, narrow_steps


def _step_seconds(plan: ClassifierPlan, device: torch.device, repeats: int = 2) -> float:
    """Seconds per training step of ``plan``'s network on random data (after a warm-up)."""
    network = network_for_classifier(plan).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    images = torch.rand(plan.batch_size, plan.in_channels, *plan.input_size, device=device)
    targets = torch.zeros(plan.batch_size, dtype=torch.int64, device=device)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(network(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times[1:]))


def _with_overrides(plan: ClassifierPlan, overrides: dict[str, object]) -> ClassifierPlan:
    if not overrides:
        return plan
    try:
        return ClassifierPlan.model_validate({**plan.model_dump(), **overrides})
    except ValidationError as exc:
        raise ConfigError(f"--set: {first_invalid_field(exc, 'plan')}") from None
