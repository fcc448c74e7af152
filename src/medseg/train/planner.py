"""From a dataset fingerprint to a plan that fits the machine's memory and time budget.

The data decides the preprocessing (target spacing, normalisation per channel). The
network is chosen by measurement: candidate configurations (patch size, width, batch) are
timed for a moment on the training device; of those that can still train ``MIN_ITERATIONS``
steps within the budget, the largest patch wins, and at that patch the widest network that
can still train ``WIDE_MIN_ITERATIONS``.
Every decision and its reason goes into plan.json.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch

from medseg.augment import AugmentationSettings, Augmenter, padded_patch_size
from medseg.datasets import DatasetSpec
from medseg.device import autocast
from medseg.errors import ConfigError
from medseg.nn import DeepSupervisionLoss, DiceCELoss, build_network
from medseg.preprocess import ChannelNormalization, Fingerprint, Preprocessing
from medseg.preprocess.geometry import ANISOTROPY_RATIO, anisotropic_axis
from medseg.progress import log_line
from medseg.runs import Decision, Plan
from medseg.train import held_out
from medseg.train.auto_config import auto_config, choose_patch_size
from medseg.train.mirroring import mirror_decision
from medseg.train.recipe import with_recipe

#: A configuration must afford this many optimisation steps within the budget: fewer leave
#: a network of this kind under-trained (measured on Hippocampus and ISBI EM, Stage 1).
MIN_ITERATIONS = 750
#: A network wider than the narrowest candidate must afford this many: at the budgets
#: measured (600-1,800 steps, 2D and 3D) width gained nothing or lost to the narrow network's
#: extra steps (docs/plan.md#width-against-steps), so on a CPU width is bought only for long
#: trainings.
WIDE_MIN_ITERATIONS = 10_000
#: A model sees at most this many patches per patch-sized share of its training data
#: (the dataset's cropped voxels / the patch's voxels): on 40 Hippocampus cases 1,000-1,500
#: steps of batch 2 (73-110 patches a share) scored 0.881-0.883 mean Dice and 5,200 steps
#: 0.871; on 200 cases the Dice stayed flat from 57 to 81 (docs/plan.md#steps-per-case).
#: nnU-Net's recipe does not lift it: on the same 40 cases it scored 0.874 at 10,000 steps
#: and 0.868 at 30,000, against 0.885 for capped models. So a dataset whose cap is under
#: UNCAPPED_STEPS is capped at every budget.
PATCHES_PER_SHARE = 100
#: A dataset whose cap reaches this many steps is not capped: its steps follow the budget.
#: The 2D slices set (364 images, cap 14,451) scored 0.869-0.875 in 15,700 steps, above its
#: 0.845-0.866 in 5,100 (docs/plan.md#steps-per-case).
UNCAPPED_STEPS = 10_000
#: Share of the budget spent on optimisation steps (the rest: validation, start-up).
TRAINING_SHARE = 0.85
#: Seconds spent timing each candidate, at least TIMED_STEPS steps after WARM_UP_STEPS: with
#: one warm-up step and ~4 timed ones the planner timed 0.28 s/step for a network that then
#: trained at 0.19 (Hippocampus, 32^3 patches), and rejected a larger one that would have fit.
TIMING_SECONDS = 1.0
WARM_UP_STEPS = 3
TIMED_STEPS = 5

# Candidate patch sizes (voxels) from large to small, and widths (first-stage features).
_PATCH_VOXELS = {3: [128**3, 96**3, 80**3, 64**3, 64 * 64 * 32, 48**3, 32**3],
                 2: [512**2, 384**2, 256**2, 192**2, 160**2, 128**2, 96**2]}  # fmt: skip
_FEATURE_CAP = {3: 320, 2: 512}


@dataclass(frozen=True)
class Candidate:
    """One network configuration the planner may choose."""

    patch_size: list[int]
    strides: list[list[int]]
    kernel_sizes: list[list[int]]
    features: list[int]
    batch_size: int

    @property
    def cost(self) -> float:
        """Relative compute per step: voxels x batch x (first-stage width)^2."""
        return float(np.prod(self.patch_size)) * self.batch_size * self.features[0] ** 2

    def describe(self) -> str:
        patch = "x".join(map(str, self.patch_size))
        width = f"{self.features[0]}-{self.features[-1]}"
        return f"patch {patch}, batch {self.batch_size}, features {width}"


#: The plan fields that make up a network configuration.
NETWORK_FIELDS = tuple(field.name for field in fields(Candidate))


def target_spacing(fingerprint: Fingerprint) -> tuple[list[float], int | None, str]:
    """The median spacing; along a strongly anisotropic axis (nnU-Net's rule) the 10th
    percentile instead, so that the coarse axis is not made even coarser."""
    spacings = np.asarray([c.spacing for c in fingerprint.cases], float)
    target = np.median(spacings, axis=0)
    axis = anisotropic_axis(target)
    reason = "median spacing of the training cases"
    if axis is not None:
        target[axis] = float(np.percentile(spacings[:, axis], 10))
        reason += (
            f"; axis {axis} is over {ANISOTROPY_RATIO:g}x coarser than the finest, so it takes "
            "the 10th percentile and is resampled on its own with nearest neighbour"
        )
    return [float(t) for t in target], axis, reason


def normalization(fingerprint: Fingerprint) -> tuple[list[ChannelNormalization], str]:
    """Per channel: CT -> clip to the foreground 0.5-99.5 percentiles and z-score with the
    foreground mean and std; 8-bit images -> divide by 255; anything else (MRI, ...) ->
    per-image z-score inside the non-zero region."""
    schemes, reasons = [], []
    for channel in fingerprint.channels:
        stats = channel.foreground
        if channel.name.strip().upper() == "CT" and stats is not None:
            schemes.append(
                ChannelNormalization(
                    scheme="ct",
                    clip_low=stats.p0_5,
                    clip_high=stats.p99_5,
                    mean=stats.mean,
                    std=stats.std,
                )
            )
            reasons.append(f"{channel.name}: CT units, dataset foreground statistics")
        elif channel.integer_0_255:
            schemes.append(ChannelNormalization(scheme="scale_255"))
            reasons.append(f"{channel.name}: 8-bit values (integers in 0-255), scaled to 0-1")
        else:
            schemes.append(ChannelNormalization(scheme="zscore_nonzero"))
            reasons.append(f"{channel.name}: arbitrary units, per-image z-score of non-zero voxels")
    return schemes, "; ".join(reasons)


def candidates(
    shape: Sequence[int], spacing: Sequence[float], dim: int, device_type: str
) -> list[Candidate]:
    """Network configurations for patches of images of ``shape``, cheapest first."""
    gpu = device_type == "cuda"
    # a CPU in 2D may go down to 8: on a 2D set the extra steps were worth more than the
    # width (docs/plan.md#width-against-steps); in 3D 16 is the narrowest measured
    bases = [32] if gpu else [32, 16] if dim == 3 else [32, 16, 8]
    # batch 2 in 2D on a CPU too: more steps beat larger batches there (docs/plan.md)
    batch = 12 if gpu and dim == 2 else 2
    found: dict[tuple, Candidate] = {}
    for voxels in _PATCH_VOXELS[dim]:
        patch, strides, kernels = choose_patch_size(shape, spacing, voxels)
        for base in bases:
            features = [min(base * 2**i, _FEATURE_CAP[dim]) for i in range(len(strides))]
            key = (tuple(patch), base)
            found.setdefault(key, Candidate(patch, strides, kernels, features, batch))
    return sorted(found.values(), key=lambda c: c.cost)


def seconds_per_iteration(
    candidate: Candidate,
    in_channels: int,
    num_classes: int,
    model: str,
    device: torch.device,
    seconds: float = TIMING_SECONDS,
    augmentation: AugmentationSettings | None = None,
    spacing: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> float:
    """Time of one training step of a candidate, measured as training runs it: the default
    augmentation of a batch, then forward (with deep supervision for the U-Net, under
    autocast in ``dtype``), backward and an SGD step. The median of the steps timed, so that
    a moment of load elsewhere on the machine does not decide the network."""
    dim = len(candidate.patch_size)
    network = build_network(
        model, in_channels, num_classes, dim, candidate.features, candidate.strides,
        candidate.kernel_sizes, deep_supervision=model != "fcn",
    ).to(device)  # fmt: skip
    optimizer = torch.optim.SGD(network.parameters(), lr=1e-4, momentum=0.99, nesterov=True)
    loss_fn = DeepSupervisionLoss(DiceCELoss())
    augmentation = augmentation or AugmentationSettings()
    augmenter = Augmenter(augmentation, dim, seed=0, device=device, spacing=spacing)
    drawn = padded_patch_size(candidate.patch_size, augmentation, spacing)
    generator = torch.Generator().manual_seed(0)
    shape = (candidate.batch_size, in_channels, *drawn)
    image = torch.randn(shape, generator=generator).to(device)
    target = torch.randint(0, num_classes, (shape[0], *shape[2:]), generator=generator).to(device)

    def step() -> None:
        batch, labels = augmenter(image, target, output_size=candidate.patch_size)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            outputs = network(batch)
        loss = loss_fn(outputs, labels)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(WARM_UP_STEPS):  # allocation, kernel selection
        step()
    times: list[float] = []
    while len(times) < TIMED_STEPS or sum(times) < seconds:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def steps_cap(
    fingerprint: Fingerprint, spacing: Sequence[float], patch: Sequence[int], batch: int
) -> int:
    """The most steps worth training on this data: `PATCHES_PER_SHARE` patches for every
    patch-sized share of the cases' cropped voxels at the target spacing (never below
    `MIN_ITERATIONS`). A 2D patch over 3D data counts slice tiles."""
    target = np.asarray(spacing, float)
    voxels = sum(
        float(np.prod(np.asarray(c.cropped_shape) * np.asarray(c.spacing) / target))
        for c in fingerprint.cases
    )
    shares = voxels / float(np.prod(patch))
    return max(MIN_ITERATIONS, int(PATCHES_PER_SHARE * shares / batch))


def small_data_cap(
    fingerprint: Fingerprint, spacing: Sequence[float], network: Candidate | Plan
) -> int | None:
    """`steps_cap` for ``network``'s patch and batch where it binds every budget (a dataset
    small enough that it is under `UNCAPPED_STEPS`); None for larger datasets, whose steps
    follow the budget."""
    cap = steps_cap(fingerprint, spacing, network.patch_size, network.batch_size)
    return cap if cap < UNCAPPED_STEPS else None


def activation_gigabytes(candidate: Candidate) -> float:
    """A rough upper estimate of a training step's activation memory (GB): every stage's
    feature maps, kept for the backward pass about eight times over (convolutions, norms,
    activations, decoder copies)."""
    voxels = float(np.prod(candidate.patch_size))
    total = 0.0
    for features, stride in zip(candidate.features, candidate.strides):
        voxels /= float(np.prod(stride))
        total += features * voxels
    return candidate.batch_size * total * 4 * 8 / 1e9


def choose_candidate(
    options: Sequence[Candidate],
    budget_seconds: float,
    measure,
    memory_gb: float | None,
    quiet: bool = True,
    cap: Callable[[Candidate], int | None] = lambda candidate: None,
) -> tuple[Candidate, float, list[str]]:
    """The candidate with the largest patch, and at that patch the widest network, that fits
    in memory and trains its steps in the budget (MIN_ITERATIONS for the narrowest width,
    WIDE_MIN_ITERATIONS for any wider; a candidate trains what the budget affords, or its
    ``cap`` if that is less); the cheapest one if none does. Timed by patch size,
    then width; a width that does not fit ends that patch (so does a narrowest network that
    cannot afford twice WIDE_MIN_ITERATIONS: a wider one costs at least twice as much per
    step), a narrowest network that does not fit ends the search. Returns the choice, its
    seconds per step, and a line per candidate timed."""
    notes: list[str] = []
    chosen: tuple[Candidate, float] | None = None
    narrowest = min(c.features[0] for c in options)
    too_wide: list[list[int]] = []  # patches at which a width did not fit
    for candidate in sorted(options, key=lambda c: (np.prod(c.patch_size), c.features[0])):
        if candidate.patch_size in too_wide:
            continue
        if memory_gb is not None and activation_gigabytes(candidate) > memory_gb:
            notes.append(f"{candidate.describe()}: over {memory_gb:g} GB, skipped")
            continue
        step = measure(candidate)
        affordable = int(budget_seconds * TRAINING_SHARE / step)
        limit = cap(candidate)
        trained = affordable if limit is None else min(affordable, limit)
        notes.append(f"{candidate.describe()}: {step:.3f} s/step, {affordable} steps")
        if trained < affordable:
            notes[-1] += f" (capped at {trained})"
        log_line(f"planning: {notes[-1]}", quiet)
        is_narrowest = candidate.features[0] == narrowest
        needed = MIN_ITERATIONS if is_narrowest else WIDE_MIN_ITERATIONS
        if trained >= needed or chosen is None:
            chosen = (candidate, step)
        if trained < needed and is_narrowest:
            break
        if trained < (2 * WIDE_MIN_ITERATIONS if is_narrowest else needed):
            too_wide.append(candidate.patch_size)
    if chosen is None:
        raise ConfigError(f"no network configuration fits in {memory_gb} GB of memory")
    return chosen[0], chosen[1], notes


def _data_decisions(
    fingerprint: Fingerprint,
) -> tuple[Preprocessing, list[int], list[Decision]]:
    """The preprocessing the data asks for, the median cropped shape at the target spacing,
    and the decisions that say why."""
    spacing, separate_axis, spacing_reason = target_spacing(fingerprint)
    schemes, norm_reason = normalization(fingerprint)
    cropped = np.asarray(fingerprint.median_cropped_shape, float)
    median_spacing = np.asarray(fingerprint.median_spacing, float)
    shape = [max(1, int(round(n))) for n in cropped * median_spacing / np.asarray(spacing)]
    decisions = [
        Decision(setting="preprocessing.target_spacing", value=spacing, reason=spacing_reason),
        Decision(
            setting="preprocessing.normalization",
            value=[s.scheme for s in schemes],
            reason=norm_reason,
        ),
        Decision(
            setting="median_shape",
            value=shape,
            reason="median size after cropping to the non-zero region, at the target spacing",
        ),
    ]
    prep = Preprocessing(target_spacing=spacing, normalization=schemes, separate_axis=separate_axis)
    return prep, shape, decisions


def _timed_network(
    plan: Plan,
    shape: list[int],
    spacing: list[float],
    device: torch.device,
    budget_minutes: float,
    memory_gb: float | None,
    quiet: bool,
    overrides: dict[str, object],
    cap: Callable[[Candidate], int | None],
) -> tuple[Plan, int, list[Decision]]:
    """``plan`` with the network chosen by timing candidates within the budget (each trains
    at most its ``cap``); the steps the budget affords, and the decisions."""
    net_shape, net_spacing = list(shape), list(spacing)
    if plan.slice_axis is not None:
        del net_shape[plan.slice_axis], net_spacing[plan.slice_axis]
    options = candidates(net_shape, net_spacing, plan.dim, device.type)

    def measure(candidate: Candidate) -> float:
        return seconds_per_iteration(
            candidate, plan.in_channels, plan.num_classes, plan.model, device,
            spacing=net_spacing, dtype=plan.training_dtype(device),
        )  # fmt: skip

    given = {k: v for k, v in overrides.items() if k in NETWORK_FIELDS and v is not None}
    step: float | None = None
    if "patch_size" in given:  # the user's network: only its step time is measured
        chosen, notes = Candidate(**{k: getattr(plan, k) for k in NETWORK_FIELDS}), []
    else:
        chosen, step, notes = choose_candidate(
            options, budget_minutes * 60, measure, memory_gb, quiet, cap
        )
    final = replace(chosen, **given)
    if len(final.features) != len(final.strides):
        raise ConfigError(
            f"features needs one width per level: {len(final.strides)} for patch "
            f"{final.patch_size}, got {len(final.features)}"
        )
    if final != chosen or step is None:
        step = measure(final)
        notes.append(f"{final.describe()} (as set): {step:.3f} s/step")
    affordable = int(budget_minutes * 60 * TRAINING_SHARE / step)
    plan = plan.model_copy(update={**asdict(final), "seconds_per_iteration": step})
    rule = (
        f"the largest patch that trains at least {MIN_ITERATIONS} steps in {budget_minutes:g} "
        f"min on {device.type}, then the widest network at it that trains {WIDE_MIN_ITERATIONS}"
    )
    if given:
        rule = f"{', '.join(sorted(given))} set on the command line or in the settings"
    reason = f"{rule} ({affordable} at {step:.3f} s/step); timed: " + "; ".join(notes)
    return (
        plan,
        affordable,
        [
            Decision(setting="network", value=final.describe(), reason=reason),
            Decision(setting="iterations", value=affordable, reason="budget / measured step time"),
        ],
    )


def _cap_decision(cap: int, affordable: int) -> Decision:
    """Why a small dataset's training stops at ``cap`` steps."""
    why = (
        f"more than {cap} steps ({PATCHES_PER_SHARE} patches per patch-sized share of the "
        "data) overfit a dataset this small, with nnU-Net's longer recipe too "
        "(docs/plan.md#steps-per-case)"
    )
    if cap < affordable:
        reason = f"the budget affords {affordable} steps, but {why}; training stops there "
        reason += "with time left"
    else:
        reason = f"training stops at {cap} steps if the clock has not stopped it: {why}"
    return Decision(setting="max_iterations", value=cap, reason=reason)


def _held_out_decision(affordable: int, cap: int, search: bool) -> Decision:
    """Whether a small dataset without ``--fold`` first finds its step count on fold 0."""
    if not search:
        reason = (
            f"the budget affords {affordable} steps, under twice the cap ({cap}): a search "
            "on fold 0 in half of them would end on the clock before its peak and split the "
            "steps between two shorter models, so one model trains on every case until the "
            "cap or the clock stops it (docs/train.md#held-out-stop)"
        )
        return Decision(setting="held_out_stop", value=False, reason=reason)
    reason = (
        "the cap is an estimate (ISBI's validation peaked at a fifth of it), and a model on "
        "every case has no validation to stop it: without --fold, fold 0 trains first with a "
        "stop on its validation curve, every case then trains the steps it found, and "
        "medseg predict averages both (docs/train.md#held-out-stop)"
    )
    return Decision(setting="held_out_stop", value=True, reason=reason)


def make_plan(
    fingerprint: Fingerprint,
    spec: DatasetSpec,
    *,
    dim: int | None = None,
    model: str = "unet",
    device: torch.device | None = None,
    budget_minutes: float | None = None,
    memory_gb: float | None = None,
    quiet: bool = True,
    planned_steps: int | None = None,
    **overrides: object,
) -> Plan:
    """The plan for a dataset. With ``budget_minutes`` the network is chosen by timing
    candidates on ``device``; without, a default size for the device type is used. The
    recipe (optimiser, augmentation) follows the number of steps the budget affords, or
    ``planned_steps`` (default: 100 epochs of 100) without a time budget; see
    `medseg.train.recipe.recipe_for_steps`."""
    device = device or torch.device("cpu")
    prep, shape, decisions = _data_decisions(fingerprint)
    spacing = prep.target_spacing
    names = {v: k for k, v in spec.labels.items()}
    plan = auto_config(  # data description, 2D/3D, defaults
        shapes=[shape],
        spacings=[spacing],
        in_channels=spec.num_channels,
        label_values=spec.label_values,
        label_names=[names[v] for v in spec.label_values],
        ignore_label=spec.ignore_label,
        regions=[r.labels for r in spec.regions] if spec.regions else None,
        region_names=[r.name for r in spec.regions] if spec.regions else None,
        regions_class_order=spec.regions_class_order,
        channel_names=[spec.channel_names[str(i)] for i in range(spec.num_channels)],
        file_ending=spec.file_ending,
        dim=dim,
        model=model,
        device_type=device.type,
        **overrides,
    )
    axes, mirror = mirror_decision(fingerprint, plan.slice_axis)
    augmentation = plan.augmentation.model_copy(
        update={"mirror": plan.augmentation.mirror.model_copy(update={"axes": axes})}
    )
    plan = plan.model_copy(update={"augmentation": augmentation})
    decisions.append(mirror)
    if budget_minutes is not None:
        cap_of = functools.partial(small_data_cap, fingerprint, spacing)
        plan, affordable, timed = _timed_network(
            plan, shape, spacing, device, budget_minutes, memory_gb, quiet, overrides, cap_of
        )
        decisions += timed
        cap = cap_of(plan)
        if cap is not None:  # also when the budget seems to afford less: timing can be off
            search = held_out.search_affordable(affordable, cap)
            plan = plan.model_copy(update={"max_iterations": cap, "held_out_stop": search})
            decisions.append(_cap_decision(cap, affordable))
            decisions.append(_held_out_decision(affordable, cap, search))
            affordable = min(affordable, cap)
    else:
        affordable = planned_steps or 100 * 100
        decisions.append(
            Decision(
                setting="network",
                value=f"patch {plan.patch_size}, batch {plan.batch_size}, features {plan.features}",
                reason=f"default size for {device.type} (no time budget given to plan against)",
            )
        )
    plan, decision = with_recipe(plan, affordable, overrides)
    decisions.append(decision)
    return Plan.model_validate(
        {
            **plan.model_dump(),
            "preprocessing": prep.model_dump(),
            "median_spacing": spacing,
            "median_shape": shape,
            "budget_minutes": budget_minutes,
            "decisions": [d.model_dump() for d in decisions],
        }
    )
