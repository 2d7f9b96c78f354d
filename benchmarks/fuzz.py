"""The long fuzz run: the suite's CLI fuzz test (tests/cli/test_fuzz.py) with many examples.

Run: python benchmarks/fuzz.py [--examples 2000]
Prints pytest's summary: any failing example is shown with the arguments that broke it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()
    env = {**os.environ, "PEBBLESIM_FUZZ_EXAMPLES": str(args.examples)}
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/cli/test_fuzz.py"],
        cwd=ROOT,
        env=env,
        check=False,
    )
    print(
        f"{args.examples} examples in {time.perf_counter() - began:.0f} s; exit {result.returncode}"
    )
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
