"""The project's own promises: ruff-clean, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)?\n(.*?)\n```", quickstart, flags=re.S)


def test_readme_quickstart_has_two_commands_and_ci_runs_the_second():
    commands = readme_commands()
    assert len(commands) == 2, commands
    demo, tests = commands
    assert "pebblesim demo" in demo and "pip install" in demo
    ci = (ROOT / ".ci" / "run").read_text()
    ci_command = [line for line in ci.splitlines() if "pytest" in line and "pip" in line]
    assert len(ci_command) == 1
    assert ci_command[0].strip() in tests, (ci_command, tests)


def tracked_python_files() -> list[str]:
    """The Python files git tracks (a developer's scratch files are not the project's)."""
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:  # not a git checkout (an sdist): lint the whole tree
        return [str(ROOT)]
    return [str(ROOT / name) for name in listed.stdout.split()]


def test_tree_is_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    result = subprocess.run(
        [ruff, "check", *tracked_python_files()], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
