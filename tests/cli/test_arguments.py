"""Argument types shared by the commands."""

import argparse

import pytest

from medseg.cli import arguments


def test_fold_model_takes_folds_and_their_further_models():
    assert [arguments.fold_model(v) for v in ("3", "all", "0_1", "all_2", "12_10")] == [
        3, "all", "0_1", "all_2", "12_10"
    ]  # fmt: skip
    for bad in ("all_search", "0_", "_1", "x_1", "0_1_2", "-1_1", "../0_1", "fold_0"):
        with pytest.raises(argparse.ArgumentTypeError, match="such as 0_1"):
            arguments.fold_model(bad)


def test_a_fold_number_is_plain_digits():
    assert [arguments.fold(v) for v in ("0", "12", "all")] == [0, 12, "all"]
    for bad in ("1_0", "-1", "+1", " 1", "١", "x"):  # int() would take the first four
        with pytest.raises(argparse.ArgumentTypeError, match="fold number or all"):
            arguments.fold(bad)
