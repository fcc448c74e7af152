"""The Basic Profile table, read attribute by attribute: each row does what its code says."""

from __future__ import annotations

import datetime

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence

from medseg.privacy.deidentify import BIRTH, PSEUDONYMISED, Deidentifier, DeidOptions
from medseg.privacy.profile import BASIC_PROFILE, KEYWORDS, Action, resolve
from medseg.privacy.pseudonyms import Pseudonyms, Secret

SECRET = Secret(b"a test key of enough length")

#: An identifying-looking value of each VR (the table's attributes hold these).
SAMPLES = {
    "AE": "CT_ROOM_4", "AS": "054Y", "AT": 0x00100010, "CS": "SMITH", "DA": "20190317",
    "DS": "71.5", "DT": "20190317104512", "FD": 1.5, "FL": 1.5, "IS": "12", "LO": "John Smith",
    "LT": "seen by Dr Who", "OB": b"\x01\x02", "OW": b"\x01\x02", "PN": "Smith^John",
    "SH": "J. Smith", "SL": 7, "SS": 7, "ST": "Smith John", "TM": "104512", "UC": "Smith",
    "UI": "1.2.3.4.5.6", "UL": 7, "UN": b"\x01\x02", "UR": "http://example.org/smith",
    "US": 7, "UT": "John Smith's notes", "SV": 7, "UV": 7, "OD": b"\0" * 8, "OF": b"\0" * 4,
    "OL": b"\0" * 4, "OV": b"\0" * 8,
}  # fmt: skip


def _vr(tag: int) -> str:
    return dictionary_VR(tag).split(" or ")[0]


def _item() -> Dataset:
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7"
    item.CodeMeaning = "Smith"
    return item


def _dataset_with(tag: int) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    vr = _vr(tag)
    value = Sequence([_item()]) if vr == "SQ" else SAMPLES[vr]
    (dataset.file_meta if tag >> 16 == 2 else dataset).add_new(tag, vr, value)
    return dataset


def test_every_row_names_the_tag_pydicom_knows_by_that_keyword():
    assert len(BASIC_PROFILE) == 456
    for tag, keyword in KEYWORDS.items():
        assert keyword_for_tag(tag) == keyword, f"{tag:08X}"


def test_every_code_is_one_the_standard_uses():
    codes = {"X", "Z", "D", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
    assert set(BASIC_PROFILE.values()) <= codes
    assert resolve("Z/D") is Action.DUMMY and resolve("X/Z") is Action.EMPTY
    with pytest.raises(ValueError):
        resolve("K")


@pytest.mark.parametrize("tag", sorted(BASIC_PROFILE), ids=lambda t: KEYWORDS[t])
def test_each_attribute_gets_its_action(tag):
    dataset = _dataset_with(tag)
    original = (dataset.file_meta if tag >> 16 == 2 else dataset)[tag].value
    Deidentifier(SECRET, Pseudonyms(SECRET), DeidOptions())(dataset)
    holder = dataset.file_meta if tag >> 16 == 2 else dataset
    action, vr = resolve(BASIC_PROFILE[tag]), _vr(tag)
    if KEYWORDS[tag] in PSEUDONYMISED:
        assert holder[tag].value == SECRET.pseudonym(str(original))  # keyed on ID, else name
    elif action is Action.REMOVE or (action is Action.DUMMY and vr == "AT"):
        assert tag not in holder
    elif vr == "SQ" and action is Action.CLEAN_INSIDE:
        (item,) = holder[tag].value
        assert item.ReferencedSOPInstanceUID == SECRET.uid("1.2.3.4.5.6.7")
    elif vr == "SQ":
        assert len(holder[tag].value) == 0
    elif action is Action.EMPTY:
        assert holder[tag].is_empty
    elif action is Action.NEW_UID:
        assert holder[tag].value == SECRET.uid(original)
    else:  # a dummy: present, not empty, not the original
        assert not holder[tag].is_empty and holder[tag].value != original


@pytest.mark.parametrize(
    "tag", [t for t in sorted(BASIC_PROFILE) if _vr(t) in ("DA", "DT")], ids=lambda t: KEYWORDS[t]
)
def test_with_shift_dates_each_date_moves_back_by_the_patients_offset(tag):
    dataset = _dataset_with(tag)
    dataset.PatientID = "12345"
    options = DeidOptions(shift_dates=True)
    Deidentifier(SECRET, Pseudonyms(SECRET), options)(dataset)
    if KEYWORDS[tag] in BIRTH:
        assert tag not in dataset or dataset[tag].is_empty
        return
    days = SECRET.shift_days("12345")
    shifted = str(dataset[tag].value)
    expected = datetime.date(2019, 3, 17) - datetime.timedelta(days=days)
    assert shifted[:8] == expected.strftime("%Y%m%d")
    assert shifted[8:] == str(SAMPLES[_vr(tag)])[8:]
