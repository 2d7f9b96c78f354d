"""Benchmark: seconds per course part, each solutions notebook run top to bottom with nbclient.

Target (issue 27): every part runs in <= 30 s on this 2-core machine. Each part runs on a fresh
ipykernel of this interpreter, as ``pebblesim tutorial`` and the tests run it (a kernelspec
written for ``sys.executable``, so a stale ``python3`` spec elsewhere cannot run another
interpreter); the time is the cells' own, from the first cell to the last (the kernel's start
is printed apart). ``--figures DIR`` also writes every figure a part displays as
``DIR/NN-cellCC-K.png``, to look at.

Run: python benchmarks/tutorials.py [N ...] [--figures DIR] [--slow SECONDS]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_SECONDS = 30.0
TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


def solutions() -> dict[int, Path]:
    """The solutions notebooks by part number."""
    found = {}
    for path in sorted((TUTORIALS / "solutions").glob("*.ipynb")):
        match = re.match(r"^(\d+)-", path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def client_for(nb, workdir: str):
    """An nbclient client for ``nb`` on an ipykernel of this interpreter, run in ``workdir``."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    specs = Path(workdir) / "kernels"
    (specs / "bench").mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "bench", "language": "python"}
    (specs / "bench" / "kernel.json").write_text(json.dumps(spec))
    manager = KernelManager(
        kernel_name="bench",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)], ensure_native_kernel=False),
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    client = NotebookClient(nb, km=manager, timeout=600, resources={"metadata": {"path": workdir}})
    return client, env


def run_part(path: Path, figures: Path | None, slow: float | None = None) -> tuple[float, float]:
    """(kernel start seconds, cells seconds) for the notebook at ``path``; with ``slow``, each
    cell that takes longer than ``slow`` seconds is printed with its time."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        client, env = client_for(nb, workdir)
        with client.setup_kernel(cleanup_kc=True, env=env, stderr=subprocess.DEVNULL):
            started = time.perf_counter()
            for index, cell in enumerate(nb.cells):
                before = time.perf_counter()
                client.execute_cell(cell, index)
                seconds = time.perf_counter() - before
                if slow is not None and seconds > slow:
                    first = cell.source.splitlines()[0] if cell.source else ""
                    print(f"    cell {index + 1:2d}  {seconds:5.1f} s  {first[:60]}", flush=True)
            finished = time.perf_counter()
    if figures is not None:
        _write_figures(nb, path.name.split("-")[0], figures)
    return started - began, finished - started


def _write_figures(nb, part: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, cell in enumerate(nb.cells):
        pngs = [
            o["data"]["image/png"]
            for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})
        ]
        for k, png in enumerate(pngs):
            (folder / f"{part}-cell{index:02d}-{k}.png").write_bytes(base64.b64decode(png))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="*", type=int, help="parts (default: all)")
    parser.add_argument("--figures", type=Path, help="write each displayed figure here as PNG")
    parser.add_argument("--slow", type=float, help="print each cell slower than this (s)")
    args = parser.parse_args()
    parts = solutions()
    over = []
    for number in args.numbers or sorted(parts):
        kernel, cells = run_part(parts[number], args.figures, args.slow)
        verdict = "ok" if cells <= TARGET_SECONDS else "OVER"
        print(
            f"part {number}  {parts[number].name:38s} {cells:6.1f} s  (kernel start "
            f"{kernel:.1f} s; target <= {TARGET_SECONDS:g} s: {verdict})",
            flush=True,
        )
        if cells > TARGET_SECONDS:
            over.append(number)
    print("every part within the target" if not over else f"over the target: parts {over}")


if __name__ == "__main__":
    main()
