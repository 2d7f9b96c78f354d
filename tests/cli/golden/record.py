"""Re-record the golden outputs (see ``cases.py``): ``python tests/cli/golden/record.py``."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from simulator.cli import main  # noqa: E402
from tests.cli.golden.cases import simulate_cases, text_cases, timeline_cases  # noqa: E402


def run(argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    return buffer.getvalue()


def record() -> None:
    outputs: dict[str, object] = {}
    for name, argv in simulate_cases().items():
        outputs[name] = json.loads(run(argv))
    for name, argv in text_cases().items():
        outputs[name] = run(argv)
    for name, argv in timeline_cases().items():
        with tempfile.TemporaryDirectory() as out:
            run([*argv, "--out", out, "--no-figures"])
            outputs[name] = json.loads((Path(out) / "timeline.json").read_text())
    (HERE / "outputs.json").write_text(json.dumps(outputs, indent=0, sort_keys=True) + "\n")
    print(f"recorded {len(outputs)} golden outputs")


if __name__ == "__main__":
    record()
