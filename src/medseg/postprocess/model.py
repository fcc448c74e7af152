"""What post-processing a run applies (``postprocessing.json``) and how it is applied."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from medseg.errors import RunFolderError, first_invalid_field, located
from medseg.io import read_json_file, write_text_atomic
from medseg.postprocess.operations import (
    closing,
    fill_holes,
    fill_holes_slicewise,
    keep_largest_component,
    keep_largest_foreground,
    opening,
    remove_small_components,
    smooth,
)

POSTPROCESSING_FILE = "postprocessing.json"
POSTPROCESSING_VERSION = 1

OperationName = Literal[
    "keep_largest",
    "remove_small",
    "fill_holes",
    "fill_holes_slices",
    "opening",
    "closing",
    "smooth",
]
_NEEDS_RADIUS = frozenset({"opening", "closing", "smooth"})


class Operation(BaseModel):
    """One operation on one label's mask, with its parameter if it takes one.

    Examples
    --------
    >>> Operation(name="remove_small", min_volume_mm3=40.0).describe()
    'remove components < 40 mm³'
    >>> Operation(name="opening", radius=1).model_dump()
    {'name': 'opening', 'radius': 1}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: OperationName
    min_volume_mm3: float | None = Field(
        default=None, gt=0, allow_inf_nan=False
    )  # remove_small (mm² in 2D)
    radius: int | None = Field(default=None, ge=1, le=32)  # opening, closing, smooth (voxels)

    @model_validator(mode="after")
    def _parameters_match(self) -> Operation:
        if (self.name == "remove_small") != (self.min_volume_mm3 is not None):
            raise ValueError("min_volume_mm3 is required by remove_small and only by it")
        if (self.name in _NEEDS_RADIUS) != (self.radius is not None):
            raise ValueError("radius is required by opening, closing and smooth and only by them")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_parameters(self, handler: SerializerFunctionWrapHandler) -> dict:
        return {key: value for key, value in handler(self).items() if value is not None}

    def apply(self, labels: np.ndarray, value: int, spacing: Sequence[float]) -> np.ndarray:
        """This operation on label ``value`` of ``labels``: a new array."""
        if self.name == "keep_largest":
            return keep_largest_component(labels, value)
        if self.name == "remove_small":
            assert self.min_volume_mm3 is not None
            return remove_small_components(labels, value, self.min_volume_mm3, spacing)
        if self.name == "fill_holes":
            return fill_holes(labels, value)
        if self.name == "fill_holes_slices":
            return fill_holes_slicewise(labels, value, spacing)
        assert self.radius is not None
        function = {"opening": opening, "closing": closing, "smooth": smooth}[self.name]
        return function(labels, value, self.radius, spacing)

    def describe(self) -> str:
        """A short human-readable name."""
        if self.name == "remove_small":
            return f"remove components < {self.min_volume_mm3:g} mm³"
        words = {
            "keep_largest": "keep largest component",
            "fill_holes": "fill holes",
            "fill_holes_slices": "fill holes per slice",
            "opening": "opening",
            "closing": "closing",
            "smooth": "smooth (majority)",
        }[self.name]
        return f"{words} r={self.radius}" if self.radius is not None else words


class LabelTrial(BaseModel):
    """One candidate tried for a label: the label's mean Dice with it added to the
    operations chosen so far, and whether it was kept."""

    operation: Operation
    mean_dice: float | None
    accepted: bool


class LabelChoice(BaseModel):
    """The operations chosen for one label value, in the order they run, and the evidence."""

    value: int = Field(ge=1)
    name: str = ""
    operations: list[Operation] = Field(default_factory=list)
    # cases of the cross-validation where this label's Dice is defined before post-processing
    cases: int = Field(default=0, ge=0)
    mean_dice_before: float | None = None
    mean_dice_after: float | None = None
    trials: list[LabelTrial] = Field(default_factory=list)


class ForegroundTrial(BaseModel):
    """Keeping the largest component of the whole foreground: each label's mean Dice with
    it (label value -> mean), and whether it was kept."""

    mean_dice: dict[int, float | None]
    accepted: bool


class Postprocessing(BaseModel):
    """The post-processing of a run: first, optionally, the largest component of the whole
    foreground; then each label's operations, labels in increasing value.

    Examples
    --------
    >>> choice = Postprocessing(
    ...     labels=[LabelChoice(value=1, operations=[Operation(name="keep_largest")])])
    >>> labels = np.array([[1, 1, 0, 1]], np.uint8)
    >>> apply_postprocessing(labels, choice, spacing=(1.0, 1.0))
    array([[1, 1, 0, 0]], dtype=uint8)
    """

    version: int = POSTPROCESSING_VERSION
    # the evidence: cross-validation cases used and the smallest mean-Dice gain that counted
    cases: int = Field(default=0, ge=0)
    min_gain: float = Field(default=0.0, ge=0)
    keep_largest_foreground: bool = False
    # the whole-foreground trial (None when not tried: fewer than two labels)
    foreground_trial: ForegroundTrial | None = None
    labels: list[LabelChoice] = Field(default_factory=list)

    @model_validator(mode="after")
    def _labels_unique(self) -> Postprocessing:
        values = [label.value for label in self.labels]
        if len(set(values)) != len(values):
            raise ValueError(f"label values repeat: {values}")
        return self

    @property
    def is_empty(self) -> bool:
        """True when applying it changes nothing."""
        return not self.keep_largest_foreground and not any(c.operations for c in self.labels)

    def operations_for(self, value: int) -> list[Operation]:
        """The operations chosen for label ``value`` (empty if none)."""
        return next((c.operations for c in self.labels if c.value == value), [])


def apply_postprocessing(
    labels: np.ndarray, choice: Postprocessing, spacing: Sequence[float]
) -> np.ndarray:
    """Apply a run's post-processing to one label map (2D or 3D, dataset label values) with
    voxel ``spacing`` in mm; returns a new array of the same shape and dtype.

    Examples
    --------
    >>> labels = np.array([[1, 0, 2, 0, 3]], np.uint8)
    >>> apply_postprocessing(labels, Postprocessing(keep_largest_foreground=True), (1.0, 1.0))
    array([[1, 0, 0, 0, 0]], dtype=uint8)
    """
    if len(spacing) != labels.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not match label map {labels.shape}")
    out = labels.copy()
    if choice.keep_largest_foreground:
        out = keep_largest_foreground(out)
    for label in sorted(choice.labels, key=lambda c: c.value):
        for operation in label.operations:
            out = operation.apply(out, label.value, spacing)
    return out


def save_postprocessing(choice: Postprocessing, run_dir: str | Path) -> Path:
    """Write ``postprocessing.json`` into ``run_dir`` atomically; returns its path."""
    path = Path(run_dir) / POSTPROCESSING_FILE
    write_text_atomic(path, choice.model_dump_json(indent=2) + "\n")
    return path


def load_postprocessing(run_dir: str | Path) -> Postprocessing | None:
    """The post-processing stored in ``run_dir``, or None when it has none.

    Examples
    --------
    >>> import tempfile
    >>> run_dir = Path(tempfile.mkdtemp())
    >>> load_postprocessing(run_dir) is None
    True
    >>> _ = save_postprocessing(Postprocessing(keep_largest_foreground=True), run_dir)
    >>> load_postprocessing(run_dir).keep_largest_foreground
    True
    """
    path = Path(run_dir) / POSTPROCESSING_FILE
    if not path.is_file():
        return None
    raw = read_json_file(path, RunFolderError)
    try:
        choice = Postprocessing.model_validate(raw)
    except ValidationError as exc:
        problem = first_invalid_field(exc, "file")
        raise RunFolderError(located(path, f"invalid post-processing: {problem}")) from None
    if choice.version > POSTPROCESSING_VERSION:
        raise RunFolderError(
            located(path, f"version {choice.version} is newer than this medseg reads")
        )
    return choice


def _dice_text(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def postprocessing_table(choice: Postprocessing) -> str:
    """A short plain-text table of the choice and its evidence (what the CLI prints).

    Examples
    --------
    >>> choice = Postprocessing(cases=4, labels=[LabelChoice(
    ...     value=1, name="liver", cases=4, mean_dice_before=0.9, mean_dice_after=0.92,
    ...     operations=[Operation(name="keep_largest")])])
    >>> print(postprocessing_table(choice))
    whole foreground: not tried (fewer than two labels)
    label    cases  Dice before  Dice after  operations
    1 liver      4       0.9000      0.9200  keep largest component
    """
    lines = []
    if choice.foreground_trial is None:
        lines.append("whole foreground: not tried (fewer than two labels)")
    else:
        verdict = "kept" if choice.foreground_trial.accepted else "rejected"
        lines.append(f"whole foreground, keep largest component: {verdict}")
    names = [f"{c.value} {c.name}".strip() for c in choice.labels]
    width = max([len("label"), *map(len, names)])
    lines.append(f"{'label':<{width}}  cases  Dice before  Dice after  operations")
    for name, label in zip(names, choice.labels):
        done = "; ".join(op.describe() for op in label.operations) or "none"
        lines.append(
            f"{name:<{width}}  {label.cases:>5}  {_dice_text(label.mean_dice_before):>11}"
            f"  {_dice_text(label.mean_dice_after):>10}  {done}"
        )
    return "\n".join(lines)
