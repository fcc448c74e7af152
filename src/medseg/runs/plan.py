"""The run configuration: everything needed to train and later to predict, saved as
``plan.json`` in the run folder. The planner (`medseg.train`) makes it; training and inference
both read it from here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError, model_validator
from torch import nn

from medseg.augment import AugmentationSettings
from medseg.device import resolve_precision
from medseg.errors import ConfigError, RunFolderError, first_invalid_field, located
from medseg.io import read_json_file, write_text_atomic
from medseg.nn import build_network
from medseg.preprocess import Preprocessing

PLAN_VERSION = 3
PLAN_FILE = "plan.json"

# Bounds that keep a hand-edited or hostile plan from crashing or misleading a run: far
# beyond any sensible setting, far below what would exhaust memory before a clear error.
MAX_PATCH_VOXELS = 2**27  # 512^3
MAX_LEVELS = 10
Size = Annotated[int, Field(ge=1, le=4096)]
Features = Annotated[int, Field(ge=1, le=2048)]
Stride = Annotated[int, Field(ge=1, le=8)]
Kernel = Annotated[int, Field(ge=1, le=9)]
Spacing = Annotated[float, Field(gt=0, le=1e5, allow_inf_nan=False)]
LabelValue = Annotated[int, Field(ge=0, le=65535)]
#: The class index that training targets hold for voxels of the dataset's ``ignore`` label:
#: the loss, the sampler and the scores leave them out.
IGNORE_CLASS = 255


class Decision(BaseModel):
    """One choice the planner made, and why (plan.json keeps them for the reader)."""

    setting: str
    value: Any
    reason: str


class Plan(BaseModel):
    """Settings of one training run (all folds share them): what the data looks like, how it
    is preprocessed, the network and the recipe. Saved as ``plan.json``; every field can be
    edited there or overridden on the command line."""

    version: int = PLAN_VERSION
    # How every image is preprocessed (None: a per-image z-score on the file's own grid).
    preprocessing: Preprocessing | None = None
    # What the data looks like.
    in_channels: int = Field(ge=1, le=1024)
    label_values: list[LabelValue] = Field(min_length=2)
    label_names: list[str]
    # nnU-Net's "ignore" label: voxels of this value in the label files are not trained on.
    ignore_label: LabelValue | None = None
    # Region-based training (nnU-Net's, as for BraTS): one sigmoid output per region (a set
    # of label values); where region i is predicted the label map gets regions_class_order[i].
    regions: list[list[LabelValue]] | None = None
    region_names: list[str] | None = None
    regions_class_order: list[LabelValue] | None = None
    channel_names: list[str]
    file_ending: str
    data_dim: Literal[2, 3]
    median_spacing: list[Spacing]
    median_shape: list[Annotated[int, Field(ge=1)]]
    # The network.
    model: Literal["unet", "resunet", "fcn"] = "unet"
    dim: Literal[2, 3]
    slice_axis: Literal[0, 1, 2] | None = None  # 2D networks on 3D data: the axis sliced along
    features: list[Features] = Field(min_length=1, max_length=MAX_LEVELS)
    strides: list[list[Stride]]
    kernel_sizes: list[list[Kernel]]
    patch_size: list[Size]
    # The recipe (nnU-Net's by default: SGD + Nesterov, poly decay, deep supervision).
    batch_size: int = Field(ge=1, le=4096)
    optimizer: Literal["adamw", "sgd"] = "sgd"
    learning_rate: float = Field(gt=0)
    momentum: float = Field(default=0.99, ge=0, lt=1)  # SGD only
    weight_decay: float = Field(default=3e-5, ge=0)
    gradient_clip: float | None = Field(default=12.0, gt=0)
    deep_supervision: bool = True  # U-Net only
    # validate and save an exponential moving average of the weights, its decay ramping up
    # to this value (medseg.train.averaging); None trains and saves the weights themselves
    ema_decay: float | None = Field(default=None, gt=0, lt=1)
    # the best epoch is the one with the highest moving average of validation Dice
    selection_smoothing: float = Field(default=0.5, ge=0, lt=1)
    # with minutes: validation after an epoch only while validating has taken at most this
    # share of the time (the first and the last epoch always); 1 validates every epoch
    validation_share: float = Field(default=0.05, gt=0, le=1)
    # autocast in the device's fast half format: float16 on CUDA, bfloat16 on a CPU with
    # AMX or AVX-512 BF16 (2x faster steps there); float32 otherwise or when False
    mixed_precision: bool = True
    augmentation: AugmentationSettings = Field(default_factory=AugmentationSettings)
    epochs: int | None = Field(default=None, ge=1, le=10**7)
    minutes: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    iterations_per_epoch: int = Field(default=100, ge=1, le=10**7)
    # with minutes: stop after this many steps even with time left (the planner's cap for
    # small datasets, which more steps overfit; docs/plan.md#steps-per-case)
    max_iterations: int | None = Field(default=None, ge=1, le=10**9)
    # with minutes and fold "all": the time a capped training leaves over trains further
    # models with the next seeds, up to this many in all (docs/train.md#budget)
    max_members: int = Field(default=5, ge=1, le=100)
    # with minutes and fold "all": fold 0 trains first, validated, to find the steps before
    # overfitting; the model on every case then trains that long (medseg.train.held_out)
    held_out_stop: bool = False
    # stop once the smoothed validation Dice has not improved for this many validations
    early_stop_patience: int | None = Field(default=None, ge=1, le=10**6)
    # ... and has fallen at least this far under its best (a plateau is not a peak)
    early_stop_decline: float = Field(default=0.0, ge=0, le=1)
    foreground_fraction: float = Field(default=1 / 3, ge=0, le=1)
    n_folds: int = Field(default=5, ge=2)
    seed: int = 0
    # How the plan was made.
    budget_minutes: float | None = None
    seconds_per_iteration: float | None = None  # measured on the planning device
    decisions: list[Decision] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Plans written before version 3 trained without deep supervision and with AdamW
        by default; keep them meaning what they meant (their weights have no extra heads)."""
        if isinstance(data, dict) and data.get("version", PLAN_VERSION) < 3:
            data = {"optimizer": "adamw", "deep_supervision": False, **data, "version": 3}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if len(self.patch_size) != self.dim:
            raise ValueError(f"patch_size {self.patch_size} is not {self.dim}D")
        if len(self.label_values) != len(self.label_names):
            raise ValueError("label_values and label_names differ in length")
        if len(set(self.label_values)) != len(self.label_values) or self.label_values[0] != 0:
            raise ValueError(f"label_values {self.label_values} must start at 0 and be unique")
        if self.ignore_label is not None and (
            self.ignore_label <= max(self.label_values) or len(self.label_values) >= IGNORE_CLASS
        ):
            raise ValueError("ignore_label must be larger than every label value")
        if self.regions is not None:
            self._check_regions()
        if len(self.strides) != len(self.features) or len(self.kernel_sizes) != len(self.features):
            raise ValueError("features, strides and kernel_sizes need one entry per level")
        if any(len(v) != self.dim for v in (*self.strides, *self.kernel_sizes)):
            raise ValueError(f"every stride and kernel size needs {self.dim} values")
        if int(np.prod(self.patch_size)) > MAX_PATCH_VOXELS:
            raise ValueError(f"patch_size {self.patch_size} exceeds {MAX_PATCH_VOXELS} voxels")
        if self.dim == 2 and self.data_dim == 3 and self.slice_axis is None:
            raise ValueError("a 2D network on 3D data needs slice_axis")
        return self

    def labels_from_classes(self, classes: np.ndarray) -> np.ndarray:
        """Map network class indices to the dataset's label values (uint8, or uint16 if needed)."""
        values = np.asarray(self.label_values)
        dtype = np.uint8 if values.max() < 256 else np.uint16
        return values.astype(dtype)[classes]

    def _check_regions(self) -> None:
        regions, names, order = self.regions, self.region_names, self.regions_class_order
        assert regions is not None
        if names is None or order is None or not len(regions) == len(names) == len(order):
            raise ValueError("regions, region_names and regions_class_order need one entry each")
        used = {v for region in regions for v in region} | set(order)
        if not regions or not used <= set(self.label_values) - {0}:
            raise ValueError("regions must be made of the foreground label_values")
        if self.ignore_label is not None:
            raise ValueError("regions and ignore_label together are not supported yet")

    @property
    def output_names(self) -> list[str]:
        """Names of the network's foreground outputs: the labels after background, or the
        regions."""
        return list(self.region_names) if self.regions else self.label_names[1:]

    @property
    def activation(self) -> str:
        """How logits become probabilities: softmax over classes, or sigmoid per region."""
        return "sigmoid" if self.regions else "softmax"

    def training_dtype(self, device: torch.device) -> torch.dtype:
        """What training computes in on ``device``: with ``mixed_precision``, the device's
        fast half format (float16 on CUDA, bfloat16 on a CPU that computes it natively; see
        `medseg.device.resolve_precision`), else float32."""
        return resolve_precision("auto" if self.mixed_precision else "float32", device)

    def region_membership(self) -> np.ndarray:
        """``(R, K)`` bool: whether training class k (label_values[k]) lies in region r."""
        assert self.regions is not None
        return np.array([[v in region for v in self.label_values] for region in self.regions])

    def labels_from_probabilities(self, probabilities: np.ndarray) -> np.ndarray:
        """The label map of the network's probabilities ``(K, *spatial)``: the most likely
        class, or for regions each region's label (``regions_class_order``) where its
        probability exceeds 0.5, later regions over earlier ones (nnU-Net's rule).

        Examples
        --------
        >>> plan = Plan(in_channels=1, label_values=[0, 1, 2], label_names=["bg", "a", "b"],
        ...     regions=[[1, 2], [2]], region_names=["whole", "core"],
        ...     regions_class_order=[1, 2], channel_names=["MR"], file_ending=".nii.gz",
        ...     data_dim=2, median_spacing=[1, 1], median_shape=[8, 8], dim=2,
        ...     features=[4], strides=[[1, 1]], kernel_sizes=[[3, 3]], patch_size=[8, 8],
        ...     batch_size=1, learning_rate=0.01)
        >>> plan.labels_from_probabilities(np.array([[0.9, 0.9, 0.2], [0.1, 0.8, 0.9]])).tolist()
        [1, 2, 2]
        """
        if not self.regions:
            return self.labels_from_classes(probabilities.argmax(0))
        assert self.regions_class_order is not None
        labels = np.zeros(probabilities.shape[1:], np.uint8 if max(self.label_values) < 256
                          else np.uint16)  # fmt: skip
        for probability, value in zip(probabilities, self.regions_class_order):
            labels[probability > 0.5] = value
        return labels

    def class_lookup(self) -> np.ndarray:
        """A table from a label file's values to training classes: label_values[k] -> k,
        the ignore label -> `IGNORE_CLASS`.

        Examples
        --------
        >>> plan = Plan(in_channels=1, label_values=[0, 1, 4], label_names=["bg", "a", "b"],
        ...     ignore_label=5, channel_names=["CT"], file_ending=".nii.gz", data_dim=2,
        ...     median_spacing=[1, 1], median_shape=[8, 8], dim=2, features=[4],
        ...     strides=[[1, 1]], kernel_sizes=[[3, 3]], patch_size=[8, 8], batch_size=1,
        ...     learning_rate=0.01)
        >>> plan.class_lookup().tolist()
        [0, 1, 0, 0, 2, 255]
        """
        stored = [*self.label_values, *([self.ignore_label] if self.ignore_label else [])]
        lookup = np.zeros(max(stored) + 1, dtype=np.uint8)
        lookup[self.label_values] = np.arange(len(self.label_values))
        if self.ignore_label is not None:
            lookup[self.ignore_label] = IGNORE_CLASS
        return lookup

    def labels_from_targets(self, target: np.ndarray) -> np.ndarray:
        """A training target (classes, `IGNORE_CLASS`) back in the label file's values."""
        if self.ignore_label is None:
            return self.labels_from_classes(target)
        ignored = target == IGNORE_CLASS
        labels = self.labels_from_classes(np.where(ignored, 0, target))
        return np.where(ignored, self.ignore_label, labels).astype(
            np.uint8 if self.ignore_label < 256 else np.uint16
        )

    @property
    def num_classes(self) -> int:
        """Output channels of the network: its classes, background included, or its
        regions."""
        return len(self.regions) if self.regions else len(self.label_values)

    def save(self, run_dir: Path) -> None:
        """Write ``plan.json`` into ``run_dir`` atomically."""
        self.save_file(run_dir / PLAN_FILE)

    def save_file(self, path: str | Path) -> None:
        """Write the plan to ``path`` atomically."""
        write_text_atomic(Path(path), self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> Plan:
        """Read ``plan.json`` from a run folder."""
        path = Path(run_dir) / PLAN_FILE
        if not path.is_file():
            raise RunFolderError(located(run_dir, f"not a medseg run folder (no {PLAN_FILE})"))
        return cls.read(path)

    @classmethod
    def read(cls, path: str | Path) -> Plan:
        """Read a plan file (``medseg plan`` writes one)."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(located(path, "plan file not found"))
        raw = read_json_file(path, RunFolderError)
        if isinstance(raw, dict) and raw.get("task") == "classification":
            raise RunFolderError(located(path, "a classifier's plan: this command needs a "
                                         "segmentation run"))  # fmt: skip
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problem = first_invalid_field(exc, "config")
            raise RunFolderError(located(path, f"invalid run configuration: {problem}")) from None


def apply_overrides(plan: Plan, settings: dict[str, object]) -> Plan:
    """The plan with fields replaced: keys are field names, dotted for nested ones
    (``preprocessing.target_spacing``); the result is validated.

    Examples
    --------
    >>> plan = Plan(in_channels=1, label_values=[0, 1], label_names=["bg", "fg"],
    ...     channel_names=["EM"], file_ending=".png", data_dim=2, dim=2,
    ...     median_spacing=[1.0, 1.0], median_shape=[32, 32], features=[16, 32],
    ...     strides=[[1, 1], [2, 2]], kernel_sizes=[[3, 3], [3, 3]], patch_size=[32, 32],
    ...     batch_size=2, learning_rate=0.01)
    >>> apply_overrides(plan, {"batch_size": 4}).batch_size
    4
    """
    data = plan.model_dump()
    for key, value in settings.items():
        target = data
        *parents, last = key.split(".")
        for name in parents:
            if not isinstance(target.get(name), dict):
                raise ConfigError(f"--set {key}: {name!r} is not a group of plan settings")
            target = target[name]
        if last not in target:
            raise ConfigError(f"--set {key}: the plan has no setting {last!r}")
        target[last] = value
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problem = first_invalid_field(exc, "plan")
        raise ConfigError(f"--set: invalid plan setting {problem}") from None


#: The initial learning rate of each optimiser when the plan does not set one.
DEFAULT_LEARNING_RATE = {"sgd": 1e-2, "adamw": 3e-3}


def network_for(config: Plan) -> nn.Module:
    """The (untrained) network a run configuration describes."""
    return build_network(
        config.model,
        config.in_channels,
        config.num_classes,
        config.dim,
        config.features,
        config.strides,
        config.kernel_sizes,
        deep_supervision=config.deep_supervision,
    )
