"""The malformed-input corpus through the command line: every case must end in exit code 2
with one line naming its culprit, within the runner's memory and time limits, having written
nothing; every control must succeed.

The corpus is generated into a temporary folder (tests/robustness/corpus.py and the
``cases_*.py`` modules) and run once per session by runner.py in a separate process, each case
in a forked child under an address-space limit (see runner.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cases_dicom  # noqa: F401 - registers its cases
import cases_images  # noqa: F401 - registers its cases
import cases_runs  # noqa: F401 - registers its cases
import pytest
from corpus import CASES, CONTROLS, Base

from medseg.datasets.phantom import write_phantom_dataset

RUNNER = Path(__file__).with_name("runner.py")


def _base(root: Path, write_run: Callable[..., Path]) -> Base:
    dataset = write_phantom_dataset(
        root / "Dataset900_Phantom3D", n_train=3, n_test=1, dim=3, shape=(24, 24, 8)
    )
    return Base(dataset, write_run(root / "run", target_spacing=(0.8, 0.8, 2.5)))


@pytest.fixture(scope="session")
def corpus_results(
    tmp_path_factory: pytest.TempPathFactory, untrained_run_writer: Callable[..., Path]
) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("corpus")
    base = _base(root / "base", untrained_run_writer)
    cases = {}
    for name, make in {**CASES, **CONTROLS}.items():
        folder = root / name
        folder.mkdir()
        argv, culprit = make(folder, base)
        cases[name] = {"argv": argv, "folder": str(folder), "culprit": culprit}
    (root / "cases.json").write_text(json.dumps(cases, indent=1))
    subprocess.run(
        [sys.executable, str(RUNNER), str(root / "cases.json"), str(root / "results.json")],
        check=True,
        timeout=3600,
    )
    results = json.loads((root / "results.json").read_text())
    for name, result in results.items():
        result.update(cases[name])
    return results


def test_the_corpus_is_large_and_reaches_every_command(corpus_results: dict[str, dict]) -> None:
    assert len(CASES) >= 80
    commands = {r["argv"][0] for name, r in corpus_results.items() if name in CASES}
    expected = {"predict", "evaluate", "train", "fingerprint", "plan", "preprocess", "register"}
    assert commands >= expected | {"atlas-segment", "postprocess", "train-registration"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_malformed_input_gets_one_clear_line(name: str, corpus_results: dict[str, dict]) -> None:
    result = corpus_results[name]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2, result["stderr"][-2000:]
    assert len(lines) == 1, lines
    assert lines[0].startswith("medseg: error: "), lines
    assert result["culprit"] in lines[0], lines
    assert result["gained"] == [] and result["lost"] == [], result


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_a_valid_input_of_the_same_kind_works(name: str, corpus_results: dict[str, dict]) -> None:
    result = corpus_results[name]
    assert result["code"] == 0, result["stderr"][-2000:]
    written = [p for p in result["gained"] if p.startswith("out/")]
    assert written, result
