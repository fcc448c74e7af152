"""The package order of docs/architecture.md, enforced: every ``import medseg.X`` in a module of
package P must name a package P may depend on (or a leaf module), and the packages that
stay free of torch do."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "medseg"

#: Modules at the top of the package that everything may import: error types, progress
#: output, worker processes, the device choice, the mask bounding box, the run's fold
#: folders, the version.
LEAVES = {"errors", "progress", "parallel", "device", "bounding_box", "folds", "__init__"}

#: What each package may import from medseg besides the leaves (docs/architecture.md).
ALLOWED: dict[str, set[str]] = {
    "io": set(),
    "datasets": {"io"},
    "preprocess": {"io", "datasets"},
    "metrics": {"io", "datasets"},
    "postprocess": {"io", "metrics"},
    "augment": set(),
    "nn": {"io"},
    "loop": {"io"},
    "runs": {"io", "preprocess", "augment", "nn"},
    "train": {"io", "datasets", "preprocess", "metrics", "augment", "nn", "loop", "runs"},
    "export": {"io", "nn", "runs"},
    "infer": {"io", "datasets", "preprocess", "metrics", "postprocess", "nn", "runs", "export"},
    "register": {"io", "datasets", "metrics", "nn", "loop"},
    "report": {"io", "datasets", "metrics"},
    "demo": {"io", "datasets", "metrics", "train", "infer", "report"},
    "serve": {"io", "postprocess", "runs", "infer"},
    "privacy": {"io"},
    "explain": {"io", "datasets", "preprocess", "nn", "runs", "infer"},
    "cli": {
        "io",
        "datasets",
        "preprocess",
        "metrics",
        "postprocess",
        "augment",
        "nn",
        "loop",
        "runs",
        "train",
        "infer",
        "register",
        "report",
        "demo",
        "serve",
        "privacy",
        "explain",
        "export",
    },  # fmt: skip
    "__main__": {"cli"},
}

#: Packages that must work without torch installed (numpy and scipy only).
TORCH_FREE = {"io", "datasets", "preprocess", "metrics", "postprocess", "report", "privacy"}


def _package(path: Path) -> str:
    return path.relative_to(SOURCE).parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """Top-level module names imported anywhere in a file (deferred imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _medseg_package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "medseg":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(SOURCE.rglob("*.py"))


def test_every_package_is_placed() -> None:
    packages = {_package(p) for p in MODULES}
    assert packages <= set(ALLOWED) | LEAVES, packages - set(ALLOWED) - LEAVES


def test_the_allowed_graph_has_no_cycle() -> None:
    done: set[str] = set()

    def visit(package: str, path: tuple[str, ...]) -> None:
        assert package not in path, " -> ".join((*path, package))
        if package not in done:
            for dependency in ALLOWED.get(package, set()):
                visit(dependency, (*path, package))
            done.add(package)

    for package in ALLOWED:
        visit(package, ())


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_follow_the_package_order(path: Path) -> None:
    package = _package(path)
    allowed = LEAVES if package in LEAVES else ALLOWED[package] | LEAVES
    for module in _imports(path):
        target = _medseg_package(module)
        if target is None or target == package:
            continue
        if package in LEAVES:
            assert target in LEAVES, f"{path.name}: a leaf module imports {module}"
        else:
            assert target in allowed, f"{package} may not import {module} ({path.name})"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _package(p) in TORCH_FREE],
    ids=lambda p: str(p.relative_to(SOURCE)),
)
def test_numpy_packages_do_not_import_torch(path: Path) -> None:
    assert not {m for m in _imports(path) if m.split(".")[0] == "torch"}


def test_deferred_imports_are_seen(tmp_path: Path) -> None:
    # Commands import inside functions; those count as much as imports at the top.
    module = tmp_path / "deferred.py"
    module.write_text("def run():\n    from medseg.train import Trainer\n    import torch.nn\n")
    assert _imports(module) == {"medseg.train", "torch.nn"}
    assert _medseg_package("medseg.train") == "train" and _medseg_package("medseg") == "__init__"
