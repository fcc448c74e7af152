"""The plan of a classifier run: ``plan.json`` with ``"task": "classification"``.

A classifier run folder has the layout of a segmentation run (``plan.json``, one
``fold_*`` folder per model with safetensors weights and ``log.csv``); what differs is the
plan: classes instead of labels, one input size every image is resized to, a classifier
network. `is_classifier_run` tells the two apart for commands that take either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from medseg.augment import AugmentationSettings
from medseg.errors import RunFolderError, first_invalid_field, located
from medseg.io import read_json_file, write_text_atomic
from medseg.nn.classifier import EncoderClassifier, ResidualClassifier
from medseg.nn.unet import unet_encoder
from medseg.runs.plan import PLAN_FILE, Decision

CLASSIFIER_PLAN_VERSION = 1


class ClassifierPlan(BaseModel):
    """How a classifier is built and trained (every field may be set with ``--set``).

    Examples
    --------
    >>> import torch
    >>> plan = ClassifierPlan(dim=2, channel_names={"0": "x-ray"}, class_names=["a", "b"],
    ...                       input_size=[28, 28])
    >>> logits = network_for_classifier(plan)(torch.rand(3, 1, 28, 28))
    >>> plan.num_classes, tuple(logits.shape)
    (2, (3, 2))
    """

    model_config = ConfigDict(extra="forbid")

    task: Literal["classification"] = "classification"
    version: int = CLASSIFIER_PLAN_VERSION
    dim: Literal[2, 3]
    channel_names: dict[str, str]
    class_names: list[str] = Field(min_length=2, max_length=10_000)
    input_size: list[int] = Field(min_length=2, max_length=3)
    # "residual": `ResidualClassifier`; "unet": a U-Net's encoder (``--init-from`` a
    # segmentation run), with that run's strides and kernel sizes
    encoder: Literal["residual", "unet"] = "residual"
    features: list[int] = Field(default_factory=lambda: [32, 64, 128, 256], min_length=1)
    blocks: int = Field(default=2, ge=1, le=16)
    strides: list[list[int]] | None = None
    kernel_sizes: list[list[int]] | None = None
    dropout: float = Field(default=0.3, ge=0.0, lt=1.0)
    batch_size: int = Field(default=64, ge=1, le=4096)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    learning_rate: float = Field(default=1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0)
    steps_per_epoch: int = Field(default=100, ge=1, le=1_000_000)
    balance: Literal["sampler", "none"] = "sampler"
    augmentation: AugmentationSettings = Field(default_factory=AugmentationSettings)
    seed: int = 0
    decisions: list[Decision] = Field(default_factory=list)

    @model_validator(mode="after")
    def _stages_agree(self) -> ClassifierPlan:
        for name in ("strides", "kernel_sizes"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != len(self.features) or any(len(v) != self.dim for v in value):
                raise ValueError(f"{name} needs one entry of {self.dim} per stage of features")
            if any(not 1 <= n <= 16 for v in value for n in v):
                raise ValueError(f"{name} must be between 1 and 16")
        return self

    @property
    def num_classes(self) -> int:
        """Number of classes (the network's outputs)."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Input channels."""
        return len(self.channel_names)

    def save(self, run_dir: Path) -> None:
        """Write ``plan.json`` into ``run_dir`` atomically."""
        write_text_atomic(Path(run_dir) / PLAN_FILE, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: str | Path) -> ClassifierPlan:
        """Read the plan of a classifier run folder."""
        path = Path(run_dir) / PLAN_FILE
        if not path.is_file():
            raise RunFolderError(located(run_dir, f"not a medseg run folder (no {PLAN_FILE})"))
        raw = read_json_file(path, RunFolderError, expect_object=True)
        if raw.get("task") != "classification":
            raise RunFolderError(located(run_dir, "a segmentation run, not a classifier"))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problem = first_invalid_field(exc, "plan")
            raise RunFolderError(located(path, f"invalid classifier plan: {problem}")) from None


def is_classifier_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a classifier's plan (False for anything else)."""
    path = Path(run_dir) / PLAN_FILE
    if not path.is_file():
        return False
    try:
        raw = read_json_file(path, RunFolderError, expect_object=True)
    except RunFolderError:
        return False
    return raw.get("task") == "classification"


def network_for_classifier(plan: ClassifierPlan) -> nn.Module:
    """The untrained network a classifier plan describes."""
    if plan.encoder == "unet":
        encoder = unet_encoder(
            plan.dim, plan.in_channels, plan.features, plan.strides, plan.kernel_sizes
        )
        return EncoderClassifier(
            plan.dim, encoder, plan.features[-1], plan.num_classes, plan.dropout
        )
    return ResidualClassifier(
        plan.dim, plan.in_channels, plan.num_classes, plan.features, plan.blocks, plan.dropout
    )


def prepare_image(array: np.ndarray, plan: ClassifierPlan) -> torch.Tensor:
    """One image ``(C, *size)`` as the network sees it, in training and in prediction:
    resized to the plan's input size (linear interpolation) and z-scored per channel."""
    image = torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32)[None]
    if list(image.shape[2:]) != plan.input_size:
        mode = "trilinear" if plan.dim == 3 else "bilinear"
        image = F.interpolate(image, size=plan.input_size, mode=mode, align_corners=False)
    axes = tuple(range(2, image.ndim))
    mean, std = image.mean(axes, keepdim=True), image.std(axes, keepdim=True)
    return ((image - mean) / std.clamp_min(1e-6))[0]
