"""The tree's promises, read from the source: one-way imports, no circles, small pieces.

Layers (DESIGN.md): ``schedules`` imports nothing of the project; the engine (``simulator``
outside ``simulator.cli``) imports neither ``visualize`` nor the CLI; ``visualize`` reads only
the Timeline, its meta, its units and the error type; only ``simulator.cli`` imports
``visualize``. No module-level import circle exists anywhere. No source file is over 400 lines
and no function over 80.
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schedules", "simulator", "visualize")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
VISUALIZE_MAY_READ = {
    "simulator.timeline",
    "simulator.units",
    "simulator.errors",
}


def source_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", *(f"{p}/*.py" for p in PACKAGES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode == 0 and listed.stdout.strip():
        return [ROOT / name for name in listed.stdout.split()]
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p) for p in source_files()}


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported project module, at module level?) for every import in ``path``.

    ``from package import submodule`` counts as importing the submodule."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.append((name, id(node) in top_level))
    return found


GRAPH = {module_name(p): imports(p) for p in source_files()}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_schedules_imports_nothing_of_the_project():
    for module, targets in GRAPH.items():
        if within(module, "schedules"):
            for target, _ in targets:
                assert within(target, "schedules"), (module, target)


def test_engine_imports_neither_visualize_nor_the_cli():
    for module, targets in GRAPH.items():
        if within(module, "simulator") and not within(module, "simulator.cli"):
            for target, _ in targets:
                assert not within(target, "visualize"), (module, target)
                assert not within(target, "simulator.cli"), (module, target)


def test_visualize_reads_only_the_timeline_and_its_units():
    for module, targets in GRAPH.items():
        if within(module, "visualize"):
            for target, _ in targets:
                assert within(target, "visualize") or target in VISUALIZE_MAY_READ, (
                    module,
                    target,
                )


def test_model_and_timeline_layers_stay_below_the_executors():
    below = ("simulator.model", "simulator.timeline")
    above = ("simulator.analytic", "simulator.ray_pipeline", "simulator.cli")
    for module, targets in GRAPH.items():
        if any(within(module, b) for b in below):
            for target, _ in targets:
                assert not any(within(target, a) for a in above), (module, target)
    for module, targets in GRAPH.items():
        if within(module, "simulator.analytic"):
            for target, _ in targets:
                assert not within(target, "simulator.ray_pipeline"), (module, target)


def test_no_module_level_import_circle():
    edges = {
        module: {t for t, top in targets if top and t in GRAPH and t != module}
        for module, targets in GRAPH.items()
    }
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_are_small(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_FILE_LINES, f"{len(lines)} lines"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} is {length} lines"
