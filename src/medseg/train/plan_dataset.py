"""A dataset folder to a plan, the one way both ``medseg plan`` and ``medseg train`` make one;
and a plan file to a preprocessed cache (``medseg preprocess``)."""

from __future__ import annotations

from pathlib import Path

from medseg.datasets import DatasetFolder, open_dataset
from medseg.device import resolve_device
from medseg.errors import ConfigError
from medseg.io.outputs import check_output_file, prepare_output_folder
from medseg.preprocess import CachedCase, compute_fingerprint, preprocess_dataset
from medseg.runs import DEFAULT_LEARNING_RATE, Plan, apply_overrides
from medseg.train.options import PlanOptions
from medseg.train.planner import NETWORK_FIELDS, make_plan

#: The budget of a training that is given none, and of a plan made without one.
DEFAULT_EPOCHS = 100


def plan_dataset(
    dataset: DatasetFolder | str | Path,
    options: PlanOptions | None = None,
    *,
    jobs: int | None = None,
    save_to: str | Path | None = None,
    fingerprint_to: str | Path | None = None,
) -> Plan:
    """The plan for a dataset on this machine: the dataset's fingerprint, then `make_plan`
    (with a ``minutes`` budget, candidate networks are timed on ``options.device``), then
    `configure_plan`. Written to ``save_to`` (and the fingerprint to ``fingerprint_to``)
    when given.

    Examples
    --------
    >>> plan = plan_dataset("Dataset004_Hippocampus", PlanOptions(minutes=10))  # doctest: +SKIP
    >>> plan.patch_size, [d.setting for d in plan.decisions]  # doctest: +SKIP
    """
    for target in (save_to, fingerprint_to):
        if target is not None:
            check_output_file(target)
    options = options or PlanOptions()
    if not isinstance(dataset, DatasetFolder):
        dataset = open_dataset(dataset)
    fingerprint = compute_fingerprint(dataset, jobs=jobs, quiet=options.quiet)
    if fingerprint_to is not None:
        fingerprint.save(fingerprint_to)
    overrides = options.overrides  # the network given by hand is timed, not chosen
    overrides.update({k: v for k, v in options.settings.items() if k in NETWORK_FIELDS})
    per_epoch = int(overrides.get("iterations_per_epoch") or 100)  # type: ignore[call-overload]
    plan = make_plan(
        fingerprint,
        dataset.spec,
        dim=options.dim,
        model=options.named_model or "unet",
        device=resolve_device(options.device),
        budget_minutes=options.minutes,
        memory_gb=options.memory_gb,
        quiet=options.quiet,
        planned_steps=None if options.minutes else (options.epochs or DEFAULT_EPOCHS) * per_epoch,
        **overrides,
    )
    plan = configure_plan(plan, options)
    if save_to is not None:
        plan.save_file(save_to)
    return plan


def configure_plan(plan: Plan, options: PlanOptions) -> Plan:
    """``plan`` with what the user gave: the seed, the budget (epochs or minutes), the recipe
    options (an optimiser without a learning rate brings its default one) and, last, every
    ``--set``. Applying it twice changes nothing."""
    update: dict[str, object] = {"seed": options.seed}
    if options.epochs is not None or options.minutes is not None:
        update.update(epochs=options.epochs, minutes=options.minutes)
    given = options.overrides
    if "optimizer" in given and "learning_rate" not in given:
        given["learning_rate"] = DEFAULT_LEARNING_RATE[str(given["optimizer"])]
    return apply_overrides(plan.model_copy(update={**update, **given}), dict(options.settings))


def preprocess_with_plan(
    dataset_dir: str | Path,
    plan_file: str | Path,
    out_dir: str | Path,
    settings: dict[str, object] | None = None,
    jobs: int | None = None,
    quiet: bool = False,
) -> list[CachedCase]:
    """``medseg preprocess``: every training case of a dataset through a plan file's
    preprocessing (``settings`` override plan fields first) into the cache ``out_dir``.

    Examples
    --------
    >>> preprocess_with_plan("Dataset004_Hippocampus", "plan.json", "cache")  # doctest: +SKIP
    """
    prepare_output_folder(out_dir)
    plan = apply_overrides(Plan.read(plan_file), settings or {})
    if plan.preprocessing is None:
        raise ConfigError(f"{plan_file}: the plan has no preprocessing section")
    dataset = open_dataset(dataset_dir)
    return preprocess_dataset(dataset, plan.preprocessing, Path(out_dir), jobs=jobs, quiet=quiet)
