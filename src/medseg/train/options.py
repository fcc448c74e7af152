"""What a user decides about planning and training, as one typed object that the command line
(or a Python caller) fills in and that is passed down unchanged to the planner and the trainer.

Fields left at None are the planner's to choose; every check of how the fields go together
happens here, before anything is read or written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.errors import ConfigError

#: Plan fields that have their own option (``--batch-size`` ...), besides ``--set``.
RECIPE_FIELDS = ("batch_size", "patch_size", "learning_rate", "optimizer", "iterations_per_epoch")


@dataclass(frozen=True)
class PlanOptions:
    """What shapes a plan made from a dataset (`plan_dataset`).

    Examples
    --------
    >>> PlanOptions(minutes=10, batch_size=4).overrides
    {'batch_size': 4}
    >>> PlanOptions(epochs=5, minutes=10)
    Traceback (most recent call last):
    ...
    medseg.errors.ConfigError: give either --epochs or --minutes, not both
    """

    #: 2 or 3 for the network; None: the data's.
    dim: int | None = None
    #: "unet", "resunet" or "fcn"; None: unet, or what the run folder already holds.
    model: str | None = None
    #: The training budget per fold: epochs or wall-clock minutes (not both).
    epochs: int | None = None
    minutes: float | None = None
    #: Memory the training may use; None: no limit beyond the device's.
    memory_gb: float | None = None
    #: "auto", "cpu", "cuda" or "cuda:N": where candidate networks are timed and trained.
    device: str = "auto"
    quiet: bool = False
    #: The run's random seed (recorded in the plan).
    seed: int = 0
    #: Any plan field by name (dotted for nested ones), applied last: ``--set FIELD=VALUE``.
    settings: Mapping[str, object] = field(default_factory=dict)
    batch_size: int | None = None
    patch_size: Sequence[int] | None = None
    learning_rate: float | None = None
    optimizer: str | None = None
    iterations_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.epochs is not None and self.minutes is not None:
            raise ConfigError("give either --epochs or --minutes, not both")

    @property
    def named_model(self) -> str | None:
        """The network named by ``--set model=...`` (applied last, so it wins) or ``--model``;
        None when neither names one."""
        model = self.settings.get("model") or self.model
        return str(model) if model else None

    @property
    def overrides(self) -> dict[str, object]:
        """The recipe fields given explicitly (``--batch-size`` ...), by plan field name."""
        given = {name: getattr(self, name) for name in RECIPE_FIELDS}
        if given["patch_size"] is not None:
            given["patch_size"] = [int(p) for p in given["patch_size"]]  # type: ignore[union-attr]
        return {name: value for name, value in given.items() if value is not None}


@dataclass(frozen=True)
class TrainOptions(PlanOptions):
    """Everything `train_run` and `train_folds` need beyond the dataset and the run folder.

    Examples
    --------
    >>> TrainOptions(epochs=2, resume=True).resume
    True
    >>> TrainOptions(freeze_encoder=True)
    Traceback (most recent call last):
    ...
    medseg.errors.ConfigError: --freeze-encoder needs --init-from
    """

    #: A plan file (from ``medseg plan``) used as it is instead of planning.
    plan_file: str | Path | None = None
    #: Preprocessed cases; None: ``RUN_DIR/preprocessed``.
    cache_dir: str | Path | None = None
    #: Continue a fold from its last saved epoch (a larger budget extends a finished fold).
    resume: bool = False
    #: Start from another run's weights (every tensor whose name and shape fit).
    init_from: str | Path | None = None
    #: With ``init_from``: train the decoder only.
    freeze_encoder: bool = False
    #: With ``init_from``: the initial learning rate (wins over ``learning_rate``).
    fine_tune_lr: float | None = None
    #: Bit-identical results for a seed on this machine (needs an epoch budget).
    deterministic: bool = False
    #: The folds of a new run (nnU-Net's splits_final.json format); None: the dataset's
    #: splits_final.json, else nnU-Net's 5-fold split.
    splits_file: str | Path | None = None
    #: Under torchrun: each process trains folds of its own (fold k on process k mod N)
    #: instead of every fold on all processes.
    spread_folds: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fine_tune_lr is not None and self.init_from is None:
            raise ConfigError("--fine-tune-lr needs --init-from")
        if self.freeze_encoder and self.init_from is None:
            raise ConfigError("--freeze-encoder needs --init-from")
        if self.deterministic and self.minutes is not None:
            raise ConfigError(NEEDS_EPOCHS)

    @property
    def overrides(self) -> dict[str, object]:
        given = super().overrides
        if self.fine_tune_lr is not None:
            given["learning_rate"] = self.fine_tune_lr
        return given


NEEDS_EPOCHS = (
    "--deterministic needs --epochs: a time budget makes the number of steps depend on the "
    "machine's speed"
)
