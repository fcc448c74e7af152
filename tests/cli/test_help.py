"""``medseg --help`` lists every command under its task group, each with a one-line summary."""

from medseg.cli import COMMAND_MODULES, build_parser
from medseg.cli.arguments import GROUPS


def _listing(out: str) -> dict[str, list[str]]:
    listing = out.split("commands:\n")[1].split("\n\n")[0]
    groups: dict[str, list[str]] = {}
    current = ""
    for line in listing.splitlines():
        if line.startswith("    "):
            groups[current].append(line.split()[0])
        else:
            current = line.strip()
            groups[current] = []
    return groups


def test_help_lists_every_command_under_its_group(run_cli):
    code, out, _ = run_cli(["--help"])
    assert code == 0
    groups = _listing(out)
    assert list(groups) == list(GROUPS)
    assert groups["evaluate"] == ["evaluate", "evaluate-classification", "calibrate"]
    assert set(groups["register"]) == {"register", "train-registration", "atlas-segment"}
    assert set(groups["prepare"]) == {
        "fingerprint",
        "plan",
        "preprocess",
        "convert",
        "anonymize",
        "info",
    }
    assert "serve-dicom" in groups["segment"]
    assert groups["classify"] == ["train-classifier", "explain"]
    listed = [name for names in groups.values() for name in names]
    subparsers = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert sorted(listed) == sorted(subparsers)


def test_every_command_has_examples_and_a_short_summary(run_cli):
    subparsers = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert len(COMMAND_MODULES) == 17 and len(subparsers) == 23
    for name, parser in subparsers.items():
        assert len(parser.summary) <= 80, name
        code, out, _ = run_cli([name, "--help"])
        assert code == 0 and f"medseg {name}" in out.split("examples:")[1]


def test_the_model_choices_are_the_networks_medseg_builds(run_cli):
    from typing import get_args

    from medseg.cli.arguments import MODELS as CHOICES
    from medseg.nn import MODELS
    from medseg.runs import Plan

    assert CHOICES == MODELS == get_args(Plan.model_fields["model"].annotation)
    for command in ("train", "plan"):
        code, out, _ = run_cli([command, "--help"])
        assert code == 0 and "{unet,resunet,fcn}" in out
