"""SIGTERM and SIGINT at any moment of `train`: one sentence, exit 143/130, no staging folder,
and no process of the run's Ray alive 5 s later."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli.outputs import STAGING_PREFIX, process_start
from simulator.cli.signals import descendants

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ("train", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4", "--steps", "50")
POLL = 0.05  # seconds between looks at the process tree
TQDM = re.compile(r"^\s*(training|demo):|\d+%\|")

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads Linux /proc")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ray_processes_of(pid: int) -> dict[int, int]:
    """Live processes of the local Ray that ``pid`` started, found by its session name (Ray
    names the session after the driver's pid), even if they were reparented."""
    session = re.compile(rf"session_[0-9_-]+_{pid}\b")
    return {
        int(p): process_start(int(p))
        for p in os.listdir("/proc")
        if p.isdigit() and session.search(cmdline(int(p)))
    }


def wait_for(child: subprocess.Popen, seen: dict[int, int], ready, timeout: float = 30) -> None:
    """Record the child's process tree until ``ready(child, titles)`` holds; fail if the child
    ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = descendants(child.pid)
        seen.update(tree)
        if ready(child, [cmdline(p) for p in tree]):
            return
        assert child.poll() is None, "the run ended before the moment to interrupt it"
        time.sleep(POLL)
    pytest.fail("the moment to interrupt never came")


def still_alive(seen: dict[int, int]) -> list[str]:
    """The seen processes still running. One already gone when it was seen has no start time
    (``process_start`` reads 0 then, and again now): it is not alive."""
    return [
        cmdline(p) or str(p) for p, start in seen.items() if start and process_start(p) == start
    ]


def catches_sigterm(pid: int) -> bool:
    """Whether ``pid`` has a SIGTERM handler yet (pebblesim's guard is in place)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            caught = next(line for line in handle if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


MOMENTS = {
    # the guard is in place and the commands are still being imported: no Ray yet
    "importing": lambda child, titles: catches_sigterm(child.pid),
    # ray.init has started the GCS but the node is not up yet
    "ray-starting": lambda child, titles: any("gcs_server" in t for t in titles),
    # the rank actors exist: training is under way
    "training": lambda child, titles: any("RankWorker" in t for t in titles),
}
CASES = [
    ("importing", signal.SIGTERM),
    ("ray-starting", signal.SIGINT),
    ("ray-starting", signal.SIGTERM),
    ("training", signal.SIGTERM),
    ("training", signal.SIGINT),
]


@pytest.mark.parametrize(("moment", "signum"), CASES, ids=[f"{m}-{s.name}" for m, s in CASES])
def test_a_signal_at_any_moment_is_one_sentence_and_leaves_nothing(tmp_path, moment, signum):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", *TRAIN, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    seen: dict[int, int] = {}
    try:
        wait_for(child, seen, MOMENTS[moment])
        time.sleep(0.5 if moment == "training" else 0)
        assert child.poll() is None, "the run ended before the moment to interrupt it"
        child.send_signal(signum)
        while child.poll() is None:
            seen.update(descendants(child.pid))
            time.sleep(POLL)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signum, err
    assert "Traceback" not in err
    lines = [s for s in re.split(r"[\r\n]+", err) if s.strip() and not TQDM.search(s)]
    assert lines == [f"pebblesim: interrupted ({signum.name})"], err
    assert not list(out.glob(f"{STAGING_PREFIX}*")) if out.exists() else True
    seen.update(ray_processes_of(child.pid))
    deadline = time.monotonic() + 5
    while still_alive(seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not still_alive(seen) and not ray_processes_of(child.pid)
