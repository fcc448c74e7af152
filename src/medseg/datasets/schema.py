"""The ``dataset.json`` schema of the nnU-Net v2 raw layout, validated with pydantic."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from medseg.errors import ConfigError, DatasetError, first_invalid_field, located
from medseg.io import read_json_file
from medseg.io.dicom_codes import segments_for

#: Label maps are stored as 8- or 16-bit integers.
MAX_LABEL_VALUE = 65535
#: nnU-Net v2's name for the label of unannotated voxels: never trained on, scored or
#: predicted. Its value must be the largest.
IGNORE_LABEL_NAME = "ignore"


class _FolderSpec(BaseModel):
    """What every ``dataset.json`` declares: channels, case count, file ending, name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    channel_names: dict[str, str]
    num_training: int = Field(alias="numTraining", ge=0)
    file_ending: str
    name: str | None = None

    @field_validator("channel_names")
    @classmethod
    def _channels_are_numbered(cls, value: dict[str, str]) -> dict[str, str]:
        expected = [str(i) for i in range(len(value))]
        if sorted(value, key=lambda k: int(k) if k.isdigit() else -1) != expected:
            raise ValueError(f"channel keys must be '0'..'{len(value) - 1}', got {list(value)}")
        if not value:
            raise ValueError("at least one channel is required")
        return value

    @field_validator("file_ending")
    @classmethod
    def _ending_has_dot(cls, value: str) -> str:
        if not value.startswith("."):
            raise ValueError(f"file_ending must start with '.', got '{value}'")
        if any(c in value for c in "/\\\0") or len(value) > 16:
            raise ValueError(f"file_ending must be a file suffix, got {value!r}")
        return value

    @property
    def num_channels(self) -> int:
        """Number of input channels."""
        return len(self.channel_names)


class Region(BaseModel):
    """One region of a region-based dataset: a name and the label values it unites."""

    name: str
    labels: list[int]


def _split_regions(labels: dict, order: object) -> dict[str, object]:
    """``labels`` (names to values or lists of values) as integer labels and regions."""
    if labels.get("background") != 0:
        raise ValueError("labels: a region-based dataset needs background = 0")
    regions = []
    for name, value in labels.items():
        if name == "background":
            continue
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values or not all(isinstance(v, int) and 0 < v <= MAX_LABEL_VALUE for v in values):
            raise ValueError(f"labels: region '{name}' must list label values above 0")
        regions.append({"name": str(name), "labels": sorted(set(values))})
    if IGNORE_LABEL_NAME in labels:
        raise ValueError("labels: the ignore label and regions together are not supported yet")
    if not isinstance(order, list) or len(order) != len(regions):
        raise ValueError(
            f"regions_class_order: a region-based dataset needs one label value per region "
            f"({len(regions)}), written where that region is predicted"
        )
    if not all(isinstance(v, int) and 0 < v <= MAX_LABEL_VALUE for v in order):
        raise ValueError("regions_class_order: label values above 0")
    values = sorted({0, *order, *(v for r in regions for v in r["labels"])})
    names = {0: "background"}
    for region, value in zip(regions, order):
        names.setdefault(value, region["name"])
    return {
        "labels": {names.get(v, f"label {v}"): v for v in values},
        "regions": regions,
        "regions_class_order": order,
    }


class DatasetSpec(_FolderSpec):
    """What ``dataset.json`` declares.

    Examples
    --------
    >>> spec = DatasetSpec(
    ...     channel_names={"0": "CT"}, labels={"background": 0, "liver": 1},
    ...     numTraining=10, file_ending=".nii.gz")
    >>> spec.label_values, spec.num_channels
    ([0, 1], 1)
    """

    labels: dict[str, int]
    #: Region-based training (nnU-Net's, as for BraTS): each region is a set of label values,
    #: predicted as its own sigmoid output; where region i is predicted, the label map gets
    #: ``regions_class_order[i]`` (later regions drawn over earlier ones).
    regions: list[Region] | None = None
    regions_class_order: list[int] | None = None

    @model_validator(mode="before")
    @classmethod
    def _regions_apart(cls, data: object) -> object:
        """A dataset.json whose labels hold lists declares regions: they move to ``regions``
        and ``labels`` becomes the label values the files hold, each named after the region
        whose ``regions_class_order`` writes it."""
        labels = data.get("labels") if isinstance(data, dict) else None
        if not isinstance(labels, dict) or not any(
            isinstance(v, (list, tuple)) for v in labels.values()
        ):
            return data
        return {**data, **_split_regions(labels, data.get("regions_class_order"))}

    @field_validator("labels")
    @classmethod
    def _labels_start_at_background(cls, value: dict[str, int]) -> dict[str, int]:
        values = sorted(value.values())
        if any(v < 0 for v in values):
            raise ValueError("label values must be >= 0")
        if not values or values[0] != 0:
            raise ValueError("labels must include background = 0")
        if len(set(values)) != len(values):
            raise ValueError("two labels share a value")
        if values[-1] > MAX_LABEL_VALUE:
            raise ValueError(f"label values must be <= {MAX_LABEL_VALUE}, got {values[-1]}")
        ignore = value.get(IGNORE_LABEL_NAME)
        if ignore is not None and (ignore != values[-1] or ignore == 0 or len(values) < 3):
            raise ValueError(
                "the 'ignore' label must have the largest value, with background and at least "
                "one other label below it (as in nnU-Net v2)"
            )
        return value

    @model_validator(mode="after")
    def _codes_name_labels(self) -> DatasetSpec:
        """A ``"codes"`` block (DICOM output, docs/dicom.md#codes) names existing labels with
        well-formed codes."""
        codes = getattr(self, "codes", None)
        if codes is not None:
            if not isinstance(codes, dict):
                raise ValueError("codes: expected an object from label name to its codes")
            try:
                segments_for(self.foreground_labels, codes)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def single_file_cases(self) -> bool:
        """Whether each image file is a whole case, channels included (MSD's layout): no
        ``_0000`` channel suffixes are looked for."""
        return getattr(self, "layout", None) == MSD_LAYOUT

    @property
    def ignore_label(self) -> int | None:
        """The value of nnU-Net's ``ignore`` label (unannotated voxels), if declared."""
        return self.labels.get(IGNORE_LABEL_NAME)

    @property
    def label_values(self) -> list[int]:
        """Sorted values of the labels a network predicts, background (0) first (the
        ``ignore`` label is not one of them)."""
        return sorted(v for k, v in self.labels.items() if k != IGNORE_LABEL_NAME)

    @property
    def stored_values(self) -> list[int]:
        """Every value a label file may hold: `label_values` and the ignore label."""
        return sorted(self.labels.values())

    @property
    def foreground_labels(self) -> dict[int, str]:
        """Foreground label value -> name (without the ``ignore`` label)."""
        ordered = sorted(self.labels.items(), key=lambda kv: kv[1])
        return {v: k for k, v in ordered if v != 0 and k != IGNORE_LABEL_NAME}


class ClassificationSpec(_FolderSpec):
    """What the ``dataset.json`` of a classification dataset declares: ``classes`` (name ->
    index, 0..K-1) instead of ``labels``.

    Examples
    --------
    >>> spec = ClassificationSpec(
    ...     channel_names={"0": "X-ray"}, classes={"normal": 0, "pneumonia": 1},
    ...     numTraining=10, file_ending=".png")
    >>> spec.class_names
    ['normal', 'pneumonia']
    """

    classes: dict[str, int]

    @field_validator("classes")
    @classmethod
    def _classes_are_numbered(cls, value: dict[str, int]) -> dict[str, int]:
        if sorted(value.values()) != list(range(len(value))) or len(value) < 2:
            raise ValueError(f"classes must be at least 2 names numbered 0..K-1, got {value}")
        if any(not name.strip() or "," in name for name in value):
            raise ValueError("class names must be non-empty and without commas")
        return value

    @property
    def class_names(self) -> list[str]:
        """Class names in index order."""
        return [name for name, _ in sorted(self.classes.items(), key=lambda kv: kv[1])]


#: The value of ``layout`` in a spec read from a Medical Segmentation Decathlon dataset.json.
MSD_LAYOUT = "msd"


def is_msd(raw: dict) -> bool:
    """Whether a dataset.json is the Medical Segmentation Decathlon's (``modality``,
    ``training`` list, labels keyed by value) rather than nnU-Net v2's."""
    return "modality" in raw and "channel_names" not in raw


def from_msd(raw: dict) -> dict:
    """An MSD dataset.json as the nnU-Net v2 fields medseg reads: ``modality`` becomes
    ``channel_names``, labels ``{"0": "background", ...}`` become ``{"background": 0, ...}``,
    files are ``.nii.gz`` with every channel in one (4D) file, and ``layout`` is "msd".
    The ``training`` and ``test`` lists are not used: cases are the files of imagesTr and
    labelsTr, as for any dataset (a file never names another).

    Examples
    --------
    >>> spec = from_msd({"modality": {"0": "MRI"}, "labels": {"0": "background",
    ...     "1": "Anterior"}, "numTraining": 260, "training": []})
    >>> spec["channel_names"], spec["labels"], spec["file_ending"]
    ({'0': 'MRI'}, {'background': 0, 'Anterior': 1}, '.nii.gz')
    """
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not all(str(k).isdigit() for k in labels):
        raise ValueError("labels: an MSD dataset.json maps label values to names")
    names = [str(name) for name in labels.values()]
    if len(set(names)) != len(names):
        raise ValueError("labels: two label values share a name")
    converted = {key: value for key, value in raw.items() if key not in ("training", "test")}
    converted.update(
        channel_names=raw["modality"],
        labels={str(name): int(value) for value, name in labels.items()},
        file_ending=".nii.gz",
        layout=MSD_LAYOUT,
    )
    return converted


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a ``dataset.json`` file, nnU-Net v2's or the Medical Segmentation
    Decathlon's (`from_msd`); errors name the file and the field."""
    path = Path(path)
    raw = _read_raw(path)
    if is_msd(raw):
        try:
            raw = from_msd(raw)
        except ValueError as exc:
            raise DatasetError(located(path, str(exc))) from None
    if "classes" in raw and "labels" not in raw:
        raise DatasetError(
            located(
                path, "a classification dataset (classes, no labels): use medseg train-classifier"
            )  # fmt: skip
        )
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(located(path, first_invalid_field(exc, "dataset.json"))) from None


def load_classification_spec(path: str | Path) -> ClassificationSpec:
    """Read and validate the ``dataset.json`` of a classification dataset."""
    path = Path(path)
    raw = _read_raw(path)
    if "classes" not in raw:
        raise DatasetError(
            located(
                path,
                'no classes: a segmentation dataset (use medseg train), or add a "classes" block',
            )  # fmt: skip
        )
    try:
        return ClassificationSpec.model_validate(raw)
    except ValidationError as exc:
        raise DatasetError(located(path, first_invalid_field(exc, "dataset.json"))) from None


def _read_raw(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(located(path, "dataset.json not found"))
    return read_json_file(path, DatasetError, expect_object=True)
