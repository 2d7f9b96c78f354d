"""The tree's promises, read from the source: one-way imports, no circles, small pieces.

Layers (DESIGN.md), each importing only the layers before it::

    schedules -> simulator.model -> simulator.timeline -> simulator.run
              -> simulator.analytic -> simulator.ray_pipeline -> visualize -> simulator.cli

with the leaf helpers ``simulator.errors``, ``simulator.units`` and ``simulator.numbers``
open to every layer but ``schedules``, and ``visualize`` reading only the Timeline's package,
the units and the error type (only ``simulator.cli`` imports ``visualize``). The Timeline sits
below the executors because they build it. No import circle exists anywhere, counting the
imports made inside functions, and such an import is kept only where it saves start-up time,
with a comment on its line saying so. Benchmarks, and tests outside ``tests/cli/``, build runs
through the library, never through ``simulator.cli``. No source file is over 400 lines and no
function over 80.
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
VISUALIZE_MAY_READ = ("simulator.timeline", "simulator.units", "simulator.errors")
LEAVES = ("simulator.errors", "simulator.units", "simulator.numbers")
LAYERS = (  # each may import itself, the layers before it and the leaves
    "schedules",
    "simulator.model",
    "simulator.timeline",
    "simulator.run",
    "simulator.analytic",
    "simulator.ray_pipeline",
    "visualize",  # and it reads only VISUALIZE_MAY_READ
    "simulator.cli",
)


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


def imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported project module, at module level?, line) for every import in ``path``.

    ``from package import submodule`` counts as importing the submodule; an import under
    ``if TYPE_CHECKING:`` is left out (it never runs)."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    checking = {
        id(child)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for child in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
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
                found.append((name, id(node) in top_level, node.lineno))
    return found


GRAPH = {module_name(p): imports(p) for p in source_files()}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer_of(module: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if within(module, layer)), None)


def test_layers_import_only_the_layers_before_them():
    for module, targets in GRAPH.items():
        layer = layer_of(module)
        if layer is None:
            continue
        for target, _, line in targets:
            leaf = any(within(target, name) for name in LEAVES) and layer > 0
            below = layer_of(target) is not None and layer_of(target) <= layer
            assert leaf or below, f"{module}:{line} imports {target}"


def test_only_the_cli_imports_visualize():
    for module, targets in GRAPH.items():
        if not within(module, "visualize") and not within(module, "simulator.cli"):
            for target, _, line in targets:
                assert not within(target, "visualize"), f"{module}:{line} imports {target}"


def test_visualize_reads_only_the_timeline_and_its_units():
    for module, targets in GRAPH.items():
        if within(module, "visualize"):
            for target, _, line in targets:
                allowed = within(target, "visualize") or any(
                    within(target, name) for name in VISUALIZE_MAY_READ
                )
                assert allowed, f"{module}:{line} imports {target}"


def _circle(edges: dict[str, set[str]]) -> list[str] | None:
    """The first import circle in ``edges`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state:
                found = visit(target, [*path, target])
                if found:
                    return found
        state[module] = 2
        return None

    for module in sorted(edges):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_import_circle_even_through_imports_inside_functions():
    edges = {
        module: {t for t, _, _ in targets if t in GRAPH and t != module}
        for module, targets in GRAPH.items()
    }
    circle = _circle(edges)
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_circle_finder_finds_one():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": set()}) is None


def test_an_import_inside_a_function_says_it_saves_start_up_time():
    for path in source_files():
        lines = path.read_text().splitlines()
        for target, top, line in imports(path):
            if not top:
                said = "start-up" in lines[line - 1] or "start-up" in lines[line - 2]
                assert said, f"{path.relative_to(ROOT)}:{line} imports {target} in a function"


def _test_and_benchmark_files() -> list[Path]:
    files = sorted((ROOT / "benchmarks").glob("*.py"))
    files += sorted(p for p in (ROOT / "tests").rglob("*.py") if "cli" not in p.parts)
    return [p for p in files if p.name != "test_architecture.py"]


def test_benchmarks_and_tests_outside_tests_cli_build_runs_through_the_library():
    for path in _test_and_benchmark_files():
        for target, _, line in imports(path):
            assert not within(target, "simulator.cli"), f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_are_small(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_FILE_LINES, f"{len(lines)} lines"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} is {length} lines"
