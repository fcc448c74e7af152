"""The Basic Profile applied to one pydicom data set, in place (PS3.15 Annex E).

Every attribute of `medseg.privacy.profile.BASIC_PROFILE` gets its action, in the data set,
its file meta information and every sequence item at any depth. Beyond the table's own rows:

- private attributes are removed, except the ones in ``keep_private`` (with their creator);
- overlay and curve groups (60xx, 50xx) are removed whole (the table names their data and
  comments; the rest of a group means nothing without them), and so are group lengths
  (gggg,0000) outside the file meta information, which removals would make wrong;
- a UID the table does not name is replaced too (a newer attribute the table does not list yet
  may hold an instance UID), except the standard's own UIDs and coding-scheme UIDs;
- a sequence the table empties or dummies loses its items (a dummy item cannot be made for
  every sequence);
- Patient's Name and Patient ID become the patient's pseudonym, and the de-identification
  attributes (PS3.15 E.1.1) say what was done.

With ``shift_dates``, the Retain Longitudinal Temporal Information with Modified Dates Option
applies instead to the table's dates and date-times (moved back by one offset per patient) and
times (kept, since a whole-day shift leaves them as they were); the birth date and time are
removed as in the basic profile.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag

from medseg import __version__
from medseg.errors import ConfigError
from medseg.privacy.profile import BASIC_PROFILE, KEYWORDS, Action, resolve
from medseg.privacy.pseudonyms import Pseudonyms, Secret

#: Private attributes kept by default, as (group, private creator, element offset): Siemens'
#: diffusion b-value, directionality and gradient direction, numbers without identity.
DEFAULT_KEEP_PRIVATE = frozenset(
    {
        (0x0019, "SIEMENS MR HEADER", 0x0C),
        (0x0019, "SIEMENS MR HEADER", 0x0D),
        (0x0019, "SIEMENS MR HEADER", 0x0E),
    }
)

#: UIDs that name no instance and are never replaced: transfer syntax, implementation class,
#: coding scheme, mapping resource, context group extension creator.
UNTOUCHED_UIDS = frozenset({0x00020010, 0x00020012, 0x0008010C, 0x00080118, 0x0008010D})

#: Dates that the Modified Dates option does not cover: removed as the basic profile says.
BIRTH = frozenset({"PatientBirthDate", "PatientBirthTime"})

#: Attributes that `--keep` cannot keep: they become the pseudonym.
PSEUDONYMISED = frozenset({"PatientName", "PatientID"})

_MODIFIED_DATES = "Retain Longitudinal Temporal Information Modified Dates Option"
_TEXT_DUMMY = "ANONYMIZED"
_DUMMIES: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
}
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
_BYTE_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
_DATE = re.compile(r"^\d{8}")


@dataclass(frozen=True)
class DeidOptions:
    """What the user chose beyond the basic profile.

    ``keep``: keywords of table attributes kept as they are (e.g. ``ROIName``, which the
    profile empties); ``keep_private``: (group, creator, element offset) of private attributes
    kept; ``shift_dates``: the Modified Dates option instead of removing dates.
    """

    shift_dates: bool = False
    keep: frozenset[str] = frozenset()
    keep_private: frozenset[tuple[int, str, int]] = field(default=DEFAULT_KEEP_PRIVATE)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keep) - set(KEYWORDS.values()))
        if unknown:
            raise ConfigError(f"--keep {unknown[0]}: not an attribute of the basic profile")
        if self.keep & PSEUDONYMISED:
            raise ConfigError("--keep cannot keep PatientName or PatientID: they become the "
                              "pseudonym")  # fmt: skip


class Deidentifier:
    """Applies the profile with one key, one pseudonym table and one set of options."""

    def __init__(self, secret: Secret, pseudonyms: Pseudonyms, options: DeidOptions) -> None:
        self.secret = secret
        self.pseudonyms = pseudonyms
        self.options = options

    def pseudonym(self, dataset: Dataset) -> str:
        """The pseudonym of the patient of ``dataset`` (by Patient ID, else by name)."""
        return self.pseudonyms(_patient(dataset))

    def __call__(self, dataset: Dataset) -> str:
        """De-identify ``dataset`` in place; return the patient's pseudonym."""
        patient = _patient(dataset)
        pseudonym = self.pseudonyms(patient)
        shift = self.secret.shift_days(patient) if self.options.shift_dates else None
        self._clean(dataset, shift)
        meta = getattr(dataset, "file_meta", None)
        if meta is not None:
            self._clean(meta, shift)
            for keyword in ("SOPClassUID", "SOPInstanceUID"):  # the meta must agree
                if keyword in dataset:
                    setattr(meta, f"MediaStorage{keyword}", dataset[keyword].value)
        dataset.PatientName = pseudonym
        dataset.PatientID = pseudonym
        self._mark(dataset, shift is not None)
        return pseudonym

    def _clean(self, dataset: Dataset, shift: int | None) -> None:
        kept_private = _kept_private(dataset, self.options.keep_private)
        for tag in list(dataset.keys()):
            stale_length = tag.element == 0 and tag.group != 2  # wrong once elements go
            private = tag.is_private and tag not in kept_private
            if private or stale_length or _overlay_or_curve(tag):
                del dataset[tag]
                continue
            element = dataset[tag]
            code = BASIC_PROFILE.get(int(tag))
            if code is None:
                if element.VR == "UI" and int(tag) not in UNTOUCHED_UIDS:
                    element.value = self._new_uids(element.value)
            elif KEYWORDS[int(tag)] not in self.options.keep:
                self._apply(dataset, element, resolve(code), shift)
            if tag in dataset and element.VR == "SQ":
                for item in element.value:
                    self._clean(item, shift)

    def _apply(self, dataset: Dataset, element: DataElement, action: Action, shift: int | None):
        keyword = KEYWORDS[int(element.tag)]
        if shift is not None and element.VR in ("DA", "DT", "TM") and keyword not in BIRTH:
            if element.VR != "TM":
                element.value = _shifted(element.value, shift)
            return
        if action is Action.REMOVE or (action is Action.NEW_UID and element.VR != "UI"):
            del dataset[element.tag]
        elif action is Action.NEW_UID:
            element.value = self._new_uids(element.value)
        elif element.VR == "SQ":
            if action is not Action.CLEAN_INSIDE:  # empty and dummy sequences lose their items
                element.value = Sequence()
        elif action is Action.CLEAN_INSIDE:
            del dataset[element.tag]
        elif action is Action.EMPTY:
            element.value = element.empty_value
        elif action is Action.DUMMY:
            _set_dummy(dataset, element)

    def _new_uids(self, value: object) -> object:
        if value is None or value == "":
            return value
        if isinstance(value, str):
            return self.secret.uid(value)
        return [self.secret.uid(str(uid)) for uid in value]

    def _mark(self, dataset: Dataset, shifted: bool) -> None:
        methods = [f"medseg {__version__}", "PS3.15 Basic Profile"]
        codes = [("113100", "Basic Application Confidentiality Profile")]
        if shifted:
            methods.append("Modified Dates Option")
            codes.append(("113107", _MODIFIED_DATES))
        methods += [f"kept {keyword}" for keyword in sorted(self.options.keep)]
        dataset.PatientIdentityRemoved = "YES"
        dataset.DeidentificationMethod = methods
        dataset.DeidentificationMethodCodeSequence = Sequence([_code(*c) for c in codes])
        dataset.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"


def _patient(dataset: Dataset) -> str:
    return str(dataset.get("PatientID", "") or dataset.get("PatientName", "") or "")


def _kept_private(dataset: Dataset, keep: frozenset[tuple[int, str, int]]) -> set[BaseTag]:
    """The private attributes of ``dataset`` that ``keep`` names, with their creators."""
    kept: set[BaseTag] = set()
    for tag in dataset.keys():  # noqa: SIM118 (iterating a Dataset yields elements)
        if not tag.is_private or tag.element < 0x1000:
            continue
        creator_tag = Tag(tag.group, tag.element >> 8)
        creator = dataset.get(creator_tag)
        name = str(creator.value).strip() if creator is not None else None
        if (tag.group, name, tag.element & 0xFF) in keep:
            kept |= {tag, creator_tag}
    return kept


def _overlay_or_curve(tag: BaseTag) -> bool:
    return tag.group % 2 == 0 and (tag.group >> 8) in (0x50, 0x60)


def _set_dummy(dataset: Dataset, element: DataElement) -> None:
    if element.VR in _DUMMIES:
        element.value = _DUMMIES[element.VR]
    elif element.VR in _NUMBER_VRS:
        element.value = 0
    elif element.VR in _BYTE_VRS:
        element.value = b"\0\0"
    elif element.VR in _TEXT_VRS:
        element.value = _TEXT_DUMMY
    else:  # AT and anything unforeseen: no dummy makes sense, remove
        del dataset[element.tag]


def _shifted(value: object, days: int) -> object:
    """DA/DT value(s) moved ``days`` back; values that are not a full date become empty."""
    if value is None or value == "":
        return value
    if isinstance(value, str):
        return _shift_one(value, days)
    return [_shift_one(str(one), days) for one in value]


def _shift_one(text: str, days: int) -> str:
    text = text.strip()
    if not _DATE.match(text):
        return ""
    try:
        date = datetime.datetime.strptime(text[:8], "%Y%m%d").date()
        date -= datetime.timedelta(days=days)
    except (ValueError, OverflowError):  # not a date, or before year 1
        return ""
    return f"{date.year:04d}{date.month:02d}{date.day:02d}{text[8:]}"


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item
