"""``pebblesim tutorial``: the course notebooks, executed and rendered to HTML for a class.

Why: the notebooks in ``tutorials/`` are stored without outputs (a test holds them to it), so
reading one means running it, and not every reader has Jupyter. This module runs the solutions
copies (``tutorials/solutions/``: the exercises answered, so every cell runs) top to bottom on an
ipykernel of this very interpreter, and writes for each part a **student** page (the exercises
empty, their checks in place) and a **solutions** page, beside the notebooks themselves, plus
an ``index.html`` (``simulator.cli.tutorial_pages`` builds the pages). The test suite runs the
notebooks through the same ``notebook_session``, so what CI executes is what a reader gets.

Needs ``nbformat``, ``nbclient``, ``ipykernel`` and ``nbconvert`` (the ``course`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from simulator.cli.outputs import StagedOutput
from simulator.cli.tutorial_pages import PageInfo, index_html, notebook_html, student_notebook
from simulator.errors import PebbleError

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
SOLUTIONS = TUTORIALS / "solutions"
CELL_TIMEOUT = 300.0  # seconds one cell may run
KERNEL_NAME = "pebblesim-python"
_NUMBERED = re.compile(r"^(\d+)-[\w-]+\.ipynb$")
# Parts of the course waiting for features that have not landed; drop one when it ships.
COMING: dict[int, str] = {}


RUNNING = ("nbformat", "nbclient", "ipykernel")  # to execute a notebook
RENDERING = (*RUNNING, "nbconvert")  # to write its pages


def _require_jupyter_libraries(modules: tuple[str, ...] = RUNNING) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise PebbleError(
            f"the tutorials need {', '.join(missing)}, which is not installed: "
            "pip install 'pebblesim[course]' (or pip install nbformat nbclient ipykernel "
            "nbconvert)."
        )


def list_tutorials(folder: Path = SOLUTIONS) -> dict[int, Path]:
    """The notebooks of ``folder`` by part number: ``03-pipelines.ipynb`` is part 3."""
    if not folder.is_dir():
        raise PebbleError(f"no tutorials at {folder}: they ship with pebblesim's source tree.")
    found = {}
    for path in sorted(folder.glob("*.ipynb")):
        match = _NUMBERED.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def kernel_environment() -> dict[str, str]:
    """The kernel's environment: ours, less ``RAY_ADDRESS``; a notebook starts its own Ray."""
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


@contextmanager
def python_kernel() -> Iterator[object]:
    """A kernel manager for an ipykernel on ``sys.executable``, whatever kernelspecs the user
    has installed (a stale ``python3`` spec elsewhere would run another interpreter)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    folder = Path(tempfile.mkdtemp(prefix="pebblesim-kernel-"))
    try:
        spec = folder / KERNEL_NAME
        spec.mkdir()
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        spec_json = {"argv": argv, "display_name": "pebblesim", "language": "python"}
        (spec / "kernel.json").write_text(json.dumps(spec_json))
        specs = KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)
        yield AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def notebook_session(nb, workdir: Path, timeout: float = CELL_TIMEOUT) -> Iterator[object]:
    """A started kernel running in ``workdir``, and an nbclient ``NotebookClient`` for ``nb``:
    ``client.execute_cell(cell, index)`` runs one cell (raising ``CellExecutionError`` if it
    raises) and stores its outputs in the cell. The kernel is shut down on exit."""
    _require_jupyter_libraries()
    from nbclient import NotebookClient

    with python_kernel() as manager:
        client = NotebookClient(  # nbclient's timeout is an int: 390.4 s would be refused
            nb,
            km=manager,
            timeout=math.ceil(timeout),
            resources={"metadata": {"path": str(workdir)}},
        )
        options = {"env": kernel_environment(), "stderr": subprocess.DEVNULL}
        with client.setup_kernel(cleanup_kc=True, **options):
            yield client


def execute_notebook(path: Path, workdir: Path | None = None, timeout: float = CELL_TIMEOUT):
    """Run the notebook at ``path`` top to bottom in ``workdir`` (default: a temporary folder)
    and return it with its outputs; a cell that raises is a PebbleError naming it."""
    _require_jupyter_libraries()
    import nbformat

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="pebblesim-tutorial-") as scratch:
        folder = Path(workdir) if workdir is not None else Path(scratch)
        with notebook_session(nb, folder, timeout) as client:
            for index, cell in enumerate(nb.cells):
                _run_cell(client, cell, index, f"{path.name}, cell {index + 1}", timeout)
    return nb


def _run_cell(client, cell, index: int, where: str, timeout: float) -> None:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    try:
        client.execute_cell(cell, index)
    except CellExecutionError as exc:
        reason = f"{exc.ename}: {exc.evalue}" if exc.ename else str(exc)
        raise PebbleError(f"{where} failed: {reason}") from None
    except CellTimeoutError:
        raise PebbleError(f"{where} ran longer than {timeout:g} s.") from None
    except DeadKernelError:
        raise PebbleError(f"{where}: the kernel died.") from None


def _chosen(numbers: list[int] | None) -> dict[int, Path]:
    available = list_tutorials()
    if not numbers:
        return available
    unknown = [n for n in numbers if n not in available]
    if unknown:
        have = ", ".join(str(n) for n in sorted(available))
        raise PebbleError(f"there is no tutorial {unknown[0]}; the course has parts {have}.")
    return {n: available[n] for n in sorted(set(numbers))}


def render_tutorials(
    numbers: list[int] | None, out: Path, progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Execute the chosen solutions notebooks (all if ``numbers`` is empty or None) and write,
    for each, ``student/<name>.html`` and ``solutions/<name>.html`` into ``out``, each beside
    its notebook (``<name>.ipynb``, stored clean), plus ``index.html`` listing every part.
    ``progress`` is called with each notebook's name before it runs.

    Nothing is written unless every chosen notebook ran; returns the paths written."""
    _require_jupyter_libraries(RENDERING)
    import nbformat

    chosen = _chosen(numbers)
    out = Path(out)
    pages: dict[int, tuple[str, str]] = {}
    with StagedOutput(out) as staged:
        for number, path in chosen.items():
            if progress:
                progress(path.name)
            started = time.perf_counter()
            executed = execute_notebook(path)
            seconds = time.perf_counter() - started
            student = nbformat.read(TUTORIALS / path.name, as_version=4)
            title = notebook_title(executed, path)
            page = path.with_suffix(".html").name
            versions = {"student": student_notebook(executed, student), "solutions": executed}
            for version, nb in versions.items():
                info = PageInfo(version, f"{version}/{path.name}", seconds)
                html = notebook_html(nb, title, info)
                staged.path(f"{version}/{page}").write_text(html, encoding="utf-8")
            shutil.copyfile(TUTORIALS / path.name, staged.path(f"student/{path.name}"))
            shutil.copyfile(path, staged.path(f"solutions/{path.name}"))
            pages[number] = (page, title)
        index = index_html(_index_entries(pages, out))
        staged.path("index.html").write_text(index, encoding="utf-8")
    return staged.written


def _index_entries(pages: dict[int, tuple[str, str]], out: Path) -> list[tuple]:
    """Every part of the course for the index: (page or None, title, note). A page rendered
    now or earlier into ``out`` is linked; a part not rendered or still coming is not."""
    entries = []
    available = list_tutorials()
    for number, path in available.items():
        page = path.with_suffix(".html").name
        if number in pages:
            entries.append((*pages[number], ""))
        elif (out / "student" / page).is_file() and (out / "solutions" / page).is_file():
            entries.append((page, notebook_title(path=path), ""))
        else:
            note = f"not rendered yet: pebblesim tutorial {number}"
            entries.append((None, notebook_title(path=path), note))
    coming = [(None, title, "coming") for n, title in COMING.items() if n not in available]
    return entries + coming


def notebook_title(nb=None, path: Path | None = None) -> str:
    """The first level-1 heading of the notebook (read from ``path`` if ``nb`` is None)."""
    if nb is None:
        import nbformat

        nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem if path is not None else "pebblesim tutorial"
