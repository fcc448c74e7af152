"""Coded labels for DICOM output: each label's name, category and type (SNOMED CT or DCM).

A dataset names its labels' codes in dataset.json's ``"codes"`` block, by label name::

    "codes": {"liver": {"category": ["SCT", "123037004", "Anatomical Structure"],
                        "type": ["SCT", "10200004", "Liver"]}}

A label without an entry is an "Anatomical Structure" of type "Tissue" (SNOMED CT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydicom.sr.coding import Code

from medseg.errors import ConfigError

#: Used for a label without an entry in dataset.json's ``codes`` block.
DEFAULT_CATEGORY = Code("91723000", "SCT", "Anatomical Structure")
DEFAULT_TYPE = Code("85756007", "SCT", "Tissue")


@dataclass(frozen=True)
class Segment:
    """One label of the map as a DICOM segment."""

    value: int  # the label's value in the map
    name: str
    category: Code = DEFAULT_CATEGORY
    type: Code = DEFAULT_TYPE


def parse_code(value: Any, where: str) -> Code:
    """A code given as ``[scheme, value, meaning]`` (e.g. ``["SCT", "10200004", "Liver"]``)."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 3
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ConfigError(
            f'{where}: expected [scheme, value, meaning], e.g. ["SCT", "10200004", '
            f'"Liver"], got {value!r}'
        )
    scheme, code, meaning = value
    return Code(code, scheme, meaning)


def segments_for(
    label_names: Mapping[int, str], codes: Mapping[str, Any] | None = None
) -> list[Segment]:
    """A segment per non-zero label; ``codes`` (dataset.json's ``"codes"`` block) maps a
    label name to ``{"category": [scheme, value, meaning], "type": [...]}``.

    Examples
    --------
    >>> liver = {"category": ["SCT", "123037004", "Anatomical Structure"],
    ...          "type": ["SCT", "10200004", "Liver"]}
    >>> [s.type.meaning for s in segments_for({1: "liver", 2: "spleen"}, {"liver": liver})]
    ['Liver', 'Tissue']
    """
    codes = dict(codes or {})
    unknown = set(codes) - set(label_names.values())
    if unknown:
        raise ConfigError(f"codes: no label named {', '.join(sorted(unknown))}")
    segments = []
    for value, name in sorted(label_names.items()):
        if value == 0:
            continue
        entry = codes.get(name, {})
        if not isinstance(entry, Mapping):
            raise ConfigError(f'codes.{name}: expected {{"category": [...], "type": [...]}}')
        if set(entry) - {"category", "type"}:
            raise ConfigError(
                f"codes.{name}: unknown keys {sorted(set(entry) - {'category', 'type'})}"
            )
        category, kind = entry.get("category"), entry.get("type")
        segments.append(
            Segment(
                value,
                name,
                DEFAULT_CATEGORY if category is None else parse_code(category, f"codes.{name}"),
                DEFAULT_TYPE if kind is None else parse_code(kind, f"codes.{name}"),
            )
        )
    return segments
