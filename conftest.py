"""pytest set-up shared by the tests and the docstring examples in ``src/medseg``.

The tests' own fixtures live in ``tests/conftest.py``; this file only reaches the docstring
examples, which ``tests/conftest.py`` cannot.
"""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _docstring_examples_write_under_pytest_tmp(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Send the folders a docstring example makes with ``tempfile.mkdtemp()`` into pytest's
    own temporary folder for that example, which pytest prunes, instead of leaving them in
    the system's temporary folder after every run."""
    if isinstance(request.node, pytest.DoctestItem):
        folder = request.getfixturevalue("tmp_path")
        monkeypatch.setattr(tempfile, "tempdir", str(folder))
