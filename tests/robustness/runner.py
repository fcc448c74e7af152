"""Run medseg command lines each in a forked child under a memory limit and a time limit.

``python runner.py CASES.json RESULTS.json``: CASES maps a name to ``{"argv": [...], "folder":
DIR}``. medseg (and torch) are imported once; each case then runs in a child forked from this
process, with its address space limited to what the parent uses plus `MEMORY_BUDGET`, its
output captured, and killed after `TIME_LIMIT` seconds. RESULTS maps each name to its exit
code (-9 when killed), its stderr, its seconds and the files its folder gained or lost.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
from pathlib import Path

MEMORY_BUDGET = 3 * 2**30  # bytes of address space a case may add to the parent's
TIME_LIMIT = 120.0  # seconds; a hang detector, far above what any case needs


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _child(argv: list[str], log: Path) -> None:
    """Runs in the fork: limit memory, send output to ``log``, run medseg, exit."""
    from medseg.cli import main

    limit = _address_space() + MEMORY_BUDGET
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        code = main(["--quiet", *argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 - reported as its own exit code
        print(f"runner: escaped main: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_case(argv: list[str], folder: Path) -> dict:
    """Fork, run ``argv`` in the child, wait (killing it after `TIME_LIMIT`)."""
    log = folder.parent / f"{folder.name}.log"
    before = _listing(folder)
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(argv, log)
    code = None
    while code is None:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
        elif time.monotonic() - start > TIME_LIMIT:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = -9
        else:
            time.sleep(0.02)
    after = _listing(folder)
    return {
        "code": code,
        "stderr": log.read_text(errors="replace"),
        "seconds": round(time.monotonic() - start, 2),
        "gained": sorted(after - before),
        "lost": sorted(before - after),
    }


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    # imported once, before the forks: the commands import these lazily
    import medseg.cli  # noqa: F401
    import medseg.infer  # noqa: F401
    import medseg.register  # noqa: F401
    import medseg.report  # noqa: F401
    import medseg.train  # noqa: F401

    results = {name: run_case(c["argv"], Path(c["folder"])) for name, c in cases.items()}
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
