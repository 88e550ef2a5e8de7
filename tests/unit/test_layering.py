"""The import direction: the shared package imports nothing above it, and each service imports only the
shared package (and itself); the services' runtime dependencies are the packages their code imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest

from jobstream.settings import PROJECT_ROOT

# Each top-level package, and the project's packages it may import (besides itself).
ALLOWED = {
    "jobstream": set(),
    "services": {"jobstream"},
    "workers": {"jobstream"},
    "sse_bridge": {"jobstream"},
    "devstack": {"jobstream", "workers"},  # it builds the models and runs every process
    # ...and the bridge's encoding, which figure 4 times in process (bench/hub_cost.py)
    "bench": {"jobstream", "devstack", "services", "workers", "sse_bridge"},
}
SERVICES = ("jobstream", "services", "workers", "sse_bridge")
# Triton loads these itself, in its Python stub's environment (workers/model_repository/README).
NOT_OURS = ("workers/model_repository/",)


def python_files(package: str) -> Iterator[Path]:
    for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
        if not any(part in str(path.relative_to(PROJECT_ROOT)) for part in NOT_OURS):
            yield path


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    ours = set(ALLOWED)
    wrong = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}: imports {module}"
        for path in python_files(package)
        for line, module in imported_modules(path)
        if (top := module.split(".")[0]) in ours and top != package and top not in ALLOWED[package]
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'itself'}:\n" + "\n".join(wrong)


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def runtime_closure(direct: list[str]) -> set[str]:
    """The runtime dependencies and everything they require (extras included, as installed)."""
    seen: set[str] = set()
    todo = [_name(r) for r in direct]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [_name(r) for r in requires(name) or [] if "extra ==" not in r]
        except PackageNotFoundError:
            continue
    return seen


def test_services_depend_on_what_they_import() -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    direct = project["dependencies"]
    closure = runtime_closure(direct)
    # tritonclient[grpc,http]'s extras are what the GPU worker imports.
    closure |= runtime_closure(["grpcio", "aiohttp", "geventhttpclient"])
    distributions = packages_distributions()
    stdlib = sys.stdlib_module_names
    missing = set()
    for package in SERVICES:
        for path in python_files(package):
            for line, module in imported_modules(path):
                top = module.split(".")[0]
                if top in stdlib or top in ALLOWED or top == "__future__":
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not dists & closure:
                    missing.add(f"{path.relative_to(PROJECT_ROOT)}:{line}: {module} ({', '.join(sorted(dists))})")
    assert not missing, "imported by a service but not among its runtime dependencies:\n" + "\n".join(sorted(missing))
    tools = {"matplotlib", "psutil", "grpcio-tools", "pytest", "mypy", "ruff", "hypothesis"}
    assert not tools & {_name(r) for r in direct}, "benchmark and development tools belong in dependency groups"
