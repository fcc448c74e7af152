"""The ``medseg`` command line: one module per command (or small group of commands), each with
``add_parser(subparsers)``; a command only parses, calls one library function and prints.
Adding a command means adding its module to `COMMAND_MODULES`."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from medseg import __version__
from medseg.cli import (
    anonymize,
    arguments,
    calibrate,
    convert,
    demo,
    evaluate,
    evaluate_classification,
    explain,
    export,
    info,
    plan,
    postprocess,
    predict,
    register,
    serve,
    serve_dicom,
    train,
    train_classifier,
)
from medseg.errors import MedsegError
from medseg.io.atomic import WRITE_FAILURES

EXIT_OK, EXIT_BUG, EXIT_USER = 0, 1, 2

#: Every command module, in the order ``medseg --help`` lists their commands within a group.
COMMAND_MODULES = (
    demo, train, train_classifier, explain, predict, export, postprocess, serve, serve_dicom,
    evaluate, evaluate_classification, calibrate, register, plan, convert, anonymize, info,
)  # fmt: skip

_EXAMPLES = """\
examples:
  medseg demo                              phantom -> train -> predict -> score
  medseg train Dataset004_Hippocampus --out runs/hippo --minutes 10
  medseg predict runs/hippo Dataset004_Hippocampus/imagesTs --out preds
  medseg evaluate preds Dataset004_Hippocampus/labelsTs --out scores

run 'medseg COMMAND --help' for a command's options"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="medseg",
        usage="medseg [--version] [--debug] [--quiet] COMMAND [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EXAMPLES,
    )
    parser.add_argument("--version", action="version", version=f"medseg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    for module in COMMAND_MODULES:
        module.add_parser(subparsers)
    parser.description = (
        "Medical image segmentation and registration with CNNs.\n\ncommands:\n"
        + arguments.command_listing(subparsers)
    )
    return parser


def _spelled_out(argv: list[str]) -> list[str]:
    """``medseg serve keys ...`` is the command ``serve-keys``.

    Examples
    --------
    >>> _spelled_out(["--quiet", "serve", "keys", "add", "alice"])
    ['--quiet', 'serve-keys', 'add', 'alice']
    """
    first = next((k for k, word in enumerate(argv) if not word.startswith("-")), len(argv))
    if argv[first : first + 2] == ["serve", "keys"]:
        return [*argv[:first], "serve-keys", *argv[first + 2 :]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg`` console script; returns the exit code."""
    parser = build_parser()
    words = _spelled_out([str(a) for a in (sys.argv[1:] if argv is None else argv)])
    args = parser.parse_args(words)
    args.argv = words  # what was asked, for commands that start other processes
    if args.command is None:
        parser.print_help()
        return EXIT_USER
    try:
        return args.run(args)
    except MedsegError as exc:
        if args.debug:
            traceback.print_exc()
        for problem in getattr(exc, "problems", []):
            print(f"medseg: error: {problem}", file=sys.stderr)
        print(f"medseg: error: {exc}", file=sys.stderr)
        return EXIT_USER
    except OSError as exc:
        if exc.errno not in WRITE_FAILURES:  # the machine's failures, not medseg's
            return _internal_error(exc, args.debug)
        if args.debug:
            traceback.print_exc()
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"medseg: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("medseg: interrupted; the latest checkpoint is kept", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence prints one line
        return _internal_error(exc, args.debug)


def _internal_error(exc: Exception, debug: bool) -> int:
    """Report a bug: the traceback with ``--debug``, else one line."""
    if debug:
        traceback.print_exc()
    else:
        print(
            f"medseg: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            file=sys.stderr,
        )
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
