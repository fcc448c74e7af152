"""``medseg info``: versions, devices, formats, optional parts and commands."""

from __future__ import annotations

import argparse
import json

from medseg.cli import arguments
from medseg.cli.output import console

EXAMPLES = """\
  medseg info
  medseg info --json > medseg-info.json        (attach it to a bug report)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = arguments.add_command(
        subparsers, "info", "prepare",
        "Show versions, devices, formats and optional parts of this installation.",
        EXAMPLES, run,
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.set_defaults(commands=sorted(subparsers.choices))


def run(args: argparse.Namespace) -> int:
    from medseg.runs.system import system_info

    info = system_info() | {"commands": args.commands}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    devices = info["devices"]
    gpus = ", ".join(f"{g['name']} ({g['memory_gib']} GiB)" for g in devices["cuda"]) or "none"
    console.print(f"medseg {info['medseg']} on Python {info['python']}, {info['platform']}")
    console.print(f"devices: {devices['cpu']['cores']} CPU cores; CUDA: {gpus}; "
                  f"--device auto uses {devices['auto']} and computes in "
                  f"{devices['auto_precision']}")  # fmt: skip
    installed = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)
    console.print(f"packages: {installed}")
    extras = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in info["extras"].items())
    console.print(f"optional parts: {extras}")
    console.print(f"commands: {', '.join(info['commands'])}")
    return 0
