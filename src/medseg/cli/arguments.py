"""What every command's parser shares: argument types that fail with a clear message, the
options several commands have, and the one way a command is declared."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

#: The task groups ``medseg --help`` lists its commands under, in this order.
GROUPS = ("segment", "classify", "evaluate", "register", "prepare")


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    group: str,
    summary: str,
    examples: str,
    run: Callable[[argparse.Namespace], int],
    description: str | None = None,
    usage: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with its one-line ``summary`` (listed under ``group`` by ``medseg
    --help``), its examples, and the function that runs it; ``usage`` replaces argparse's
    own usage line."""
    if group not in GROUPS:
        raise ValueError(f"unknown command group {group!r}")
    parser = subparsers.add_parser(
        name,
        description=description or summary,
        epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=usage,
    )
    parser.set_defaults(run=run)
    parser.task_group, parser.summary = group, summary  # type: ignore[attr-defined]
    return parser


def command_listing(subparsers: argparse._SubParsersAction) -> str:
    """The commands declared with `add_command`, grouped by task, one line each."""
    commands = subparsers.choices.items()
    width = max(len(name) for name, _ in commands) + 2
    lines = []
    for group in GROUPS:
        lines.append(f"  {group}")
        for name, parser in commands:
            if parser.task_group == group:
                lines.append(f"    {name.ljust(width)}{parser.summary}")
    return "\n".join(lines)


def dimension(value: str) -> int:
    """``2d`` or ``3d`` as 2 or 3."""
    if value.lower() not in ("2d", "3d"):
        raise argparse.ArgumentTypeError("expected 2d or 3d")
    return int(value[0])


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0 or math.isinf(number):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0 or math.isinf(number):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return number


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return number


def fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return number


def share(value: str) -> float:
    """A share strictly between 0 and 1."""
    number = float(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {value}")
    return number


def fold(value: str) -> int | str:
    """A fold number (plain digits: ``int`` would read ``1_0`` as 10) or ``all``."""
    if value == "all":
        return value
    if not _plain_digits(value):
        raise argparse.ArgumentTypeError(f"expected a fold number or all, got {value!r}")
    return int(value)


def _plain_digits(value: str) -> bool:
    """Whether ``value`` is one or more of the ASCII digits 0-9 and nothing else."""
    return value.isascii() and value.isdigit()


def fold_model(value: str) -> int | str:
    """A fold number or ``all``, or one of a fold's further models (``0_1``, ``all_2``)."""
    first, _, member = value.partition("_")
    if _plain_digits(member) and (first == "all" or _plain_digits(first)):
        return value
    try:
        return fold(value)
    except argparse.ArgumentTypeError:
        problem = f"expected a fold number, all, or a further model such as 0_1, got {value!r}"
        raise argparse.ArgumentTypeError(problem) from None


def run_folder(value: str) -> Path:
    """A run folder: a path, or a folder under ``$MEDSEG_RESULTS`` / ``$nnUNet_results``
    (``Dataset004_Hippocampus/medseg``)."""
    from medseg.runs.locations import find_run_folder

    return find_run_folder(value)


def label_tolerance(value: str) -> tuple[str, float]:
    """``LABEL=MM``."""
    label, sep, tolerance = value.partition("=")
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL=MM, got {value}")
    return label, non_negative_float(tolerance)


def setting(value: str) -> tuple[str, object]:
    """``FIELD=VALUE`` with a JSON value, or a bare word (``optimizer=sgd``)."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {value}")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    except (RecursionError, ValueError) as exc:  # nested too deep, a number too long
        raise argparse.ArgumentTypeError(f"{key}: not a usable value ({exc})") from None
    return key, parsed


def atlas_pair(value: str) -> tuple[Path, Path]:
    """``IMAGE:LABELS``."""
    image, sep, labels = value.partition(":")
    if not sep or not image or not labels:
        raise argparse.ArgumentTypeError(f"expected IMAGE:LABELS, got {value}")
    return Path(image), Path(labels)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda}",
        help="auto (CUDA when present, else CPU), cpu, or cuda (default: auto)",
    )


#: The segmentation networks (``medseg.nn.MODELS``, kept here so that the CLI need not import
#: torch to parse; a test checks that the two agree).
MODELS = ("unet", "resunet", "fcn")


def add_model(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--model",
        choices=MODELS,
        help=f"{help}: unet, resunet (a residual encoder, as nnU-Net's ResEnc) or fcn",
    )


def add_jobs(
    parser: argparse.ArgumentParser, help: str = "parallel processes (default: per core)"
) -> None:
    parser.add_argument("--jobs", type=positive_int, metavar="N", help=help)


def add_settings(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=help,
    )


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """``--memory-gb`` and ``--set``, shared by ``plan`` and ``train``."""
    parser.add_argument(
        "--memory-gb",
        type=positive_float,
        metavar="G",
        help="memory the training may use (default: no limit beyond the device's)",
    )
    add_settings(
        parser,
        "override any plan field (JSON value; dotted names for nested fields), "
        "e.g. --set batch_size=4 --set preprocessing.denoise_sigma_mm=0.5",
    )
