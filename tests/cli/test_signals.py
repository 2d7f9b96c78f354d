"""SIGTERM, SIGINT and SIGHUP at each moment of ``train``, to the driver or to its process group,
and a driver killed with SIGKILL: one sentence, exit 128+n, the output folder as it was, and no
process of the run alive.

Each moment below is a distinct code path; every start of Ray costs seconds on two cores, so the
suite does not run the full product of moments, signals and targets:

- *importing*: the guard is in place and the command's imports run with signals held; no Ray.
- *starting Ray*: the run's own Ray (``local_ray``) has its GCS up and the driver waits for it;
  the whole session is ended before anything joined it. SIGHUP, to the group: a closed terminal.
- *building actors* on a cluster the run joined (``--address``): the run's actors go, the
  cluster, which is not the run's, stays. SIGINT to the driver alone: Ctrl-C.
- *mid-step* on the run's own Ray, SIGTERM to the group: what ``timeout`` and job schedulers
  send, which used to kill Ray under the driver and hang it for 60 s.
- *writing outputs*: in-process, a real signal between two staged files.
- *a cleanup that does not return*: the guard's deadline (``GRACE``) ends the run anyway.
- *SIGKILL*: of the driver (its launcher ends Ray), and of driver and launcher (the next command
  ends what is left and says so).

Every wait is on an event (a process appearing, a line printed), with a deadline scaled by this
machine's measured start-up time, never a fixed sleep standing in for a moment.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator.cli.outputs import StagedOutput
from simulator.cli.run_files import write_timeline
from simulator.cli.signals import GRACE, Interrupted, SignalGuard, descendants
from simulator.ray_pipeline.local_ray import STATE_DIR_ENV
from simulator.ray_pipeline.processes import end_session, is_alive, session_members, start_time
from tests.deadlines import scaled

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ("train", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4", "--steps", "200")
POLL = 0.05  # seconds between looks at the process table (how often, not how long to wait)
EXIT_WITHIN = 5.0  # seconds from the signal to the exit, on a quiet machine
TQDM = re.compile(r"^\s*(training|demo):|\d+%\|")

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads Linux /proc")
pytest.importorskip("ray")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def as_in_a_terminal() -> None:
    """In the child before it runs: the three signals at their defaults, as in a terminal's
    foreground job, whatever this test process inherited (a background job ignores SIGINT)."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def catches_sigterm(pid: int) -> bool:
    """Whether ``pid`` has a SIGTERM handler yet (pebblesim's guard is in place)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            caught = next(line for line in handle if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


class Run:
    """``pebblesim ARGS`` in a session of its own (so a group signal reaches only it), with
    every process it starts recorded as (pid, start time) while it runs."""

    def __init__(self, tmp_path: Path, args, env: dict | None = None) -> None:
        self.out = tmp_path / "out"
        self.state = tmp_path / "state"  # its run records, apart from other runs on the machine
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", STATE_DIR_ENV: str(self.state)}
        self.env.pop("RAY_ADDRESS", None)
        self.env.update(env or {})
        self.child = subprocess.Popen(
            [sys.executable, "-m", "simulator.cli", *args, "--out", str(self.out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=as_in_a_terminal,
        )
        self.seen: dict[int, int] = {}
        self.launcher = 0  # the pid of the run's Ray launcher, once seen
        self.actors: dict[int, int] = {}  # its rank actors on a joined cluster (see joined)
        self._cluster: tuple[int, dict[int, int]] | None = None

    def joined(self, root: int) -> None:
        """Watch for the run's rank actors below ``root`` (the joined cluster's processes are
        not the run's descendants), ignoring those already there."""
        self._cluster = (root, descendants(root))

    def look(self) -> list[str]:
        """The command lines of the run's processes now (recording them)."""
        tree = descendants(self.child.pid)
        for pid in tree:
            if not self.launcher and "ray_head" in cmdline(pid):
                self.launcher = pid
        if self.launcher:
            tree.update(session_members(self.launcher))
        if self._cluster:
            root, before = self._cluster
            found = {p: s for p, s in descendants(root).items() if before.get(p) != s}
            self.actors.update({p: s for p, s in found.items() if "RankWorker" in cmdline(p)})
            tree.update(self.actors)
        self.seen.update(tree)
        return [cmdline(p) for p in tree]

    def wait_for(self, ready, within: float) -> None:
        """Until ``ready(command lines)`` holds; fail if the run ends first or ``within``
        seconds pass."""
        deadline = time.monotonic() + within
        while not ready(self.look()):
            assert self.child.poll() is None, "the run ended before the moment came"
            assert time.monotonic() < deadline, f"the moment did not come within {within:.0f} s"
            time.sleep(POLL)

    def interrupt(self, signum: int, group: bool) -> float:
        """Send ``signum`` to the driver or its process group; the seconds until it exited."""
        assert self.child.poll() is None, "the run ended before the moment to interrupt it"
        sent = time.monotonic()
        if group:
            os.killpg(self.child.pid, signum)
        else:
            self.child.send_signal(signum)
        while self.child.poll() is None:
            self.look()
            time.sleep(POLL)
        return time.monotonic() - sent

    def stderr_lines(self) -> list[str]:
        _, err = self.child.communicate()
        assert "Traceback" not in err, err
        return [s for s in re.split(r"[\r\n]+", err) if s.strip() and not TQDM.search(s)]

    def alive(self) -> list[str]:
        return [cmdline(p) or str(p) for p, started in self.seen.items() if is_alive(p, started)]

    def kill(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait()
        if self.launcher:
            end_session(self.launcher)


def rank_workers(titles: list[str]) -> bool:
    return any("RankWorker" in t for t in titles)


def check_interrupted(run: Run, signum: int, took: float) -> None:
    assert run.child.returncode == 128 + signum
    assert run.stderr_lines() == [f"pebblesim: interrupted ({signum.name})"]
    assert took < scaled(EXIT_WITHIN), f"exited {took:.1f} s after the signal"
    assert not run.out.exists(), "the output folder did not exist before the run"
    assert run.alive() == [], "a process of the run outlived it"


CASES = {
    # moment: (the event that it has come, the signal, sent to the whole process group?)
    "importing": (lambda titles: False, signal.SIGTERM, False),  # the event: catches_sigterm
    "starting-ray": (lambda titles: any("gcs_server" in t for t in titles), signal.SIGHUP, True),
    "mid-step": (lambda titles: any("RankWorker.run" in t for t in titles), signal.SIGTERM, True),
}


@pytest.mark.parametrize("moment", list(CASES))
def test_a_signal_on_the_runs_own_ray_is_one_sentence_and_leaves_nothing(tmp_path, moment):
    ready, signum, group = CASES[moment]
    run = Run(tmp_path, TRAIN)
    try:
        if moment == "importing":
            run.wait_for(lambda titles: catches_sigterm(run.child.pid), scaled(60))
        else:
            run.wait_for(ready, scaled(120))
        took = run.interrupt(signum, group)
    finally:
        run.kill()
    check_interrupted(run, signum, took)
    assert run.launcher or moment == "importing"
    assert not list(run.state.glob("ray-*")), "the run's record of its Ray outlived it"


def test_ctrl_c_while_building_actors_on_a_joined_cluster_leaves_that_cluster_up(
    tmp_path, ray_session
):
    address = ray_session.get_runtime_context().gcs_address
    run = Run(tmp_path, (*TRAIN, "--address", address))
    run.joined(os.getpid())  # this test session started the cluster: its processes are ours
    try:
        run.wait_for(rank_workers, scaled(120))
        took = run.interrupt(signal.SIGINT, group=False)
    finally:
        run.kill()
    assert not run.launcher, "a run that joins a cluster starts no Ray of its own"
    deadline = time.monotonic() + scaled(EXIT_WITHIN)  # the cluster's raylet ends them
    while any(is_alive(p, s) for p, s in run.actors.items()) and time.monotonic() < deadline:
        time.sleep(POLL)
    check_interrupted(run, signal.SIGINT, took)
    assert ray_session.get(ray_session.put(7)) == 7, "the joined cluster went down"


def test_a_signal_between_two_staged_files_leaves_the_output_folder_as_it_was(tmp_path):
    from simulator.analytic.run_plan import simulate_plan
    from simulator.run import make_schedule, plan_run

    timeline = simulate_plan(plan_run(make_schedule("1f1b", 2, 4)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "timeline.json").write_text("an earlier run's")
    with SignalGuard() as guard, pytest.raises(Interrupted), StagedOutput(out) as staged:
        write_timeline(staged, timeline)
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
        write_timeline(staged, timeline, "predicted_")
    assert guard.signum == signal.SIGTERM
    assert sorted(p.name for p in out.iterdir()) == ["timeline.json"]
    assert (out / "timeline.json").read_text() == "an earlier run's"


STUCK = """
import sys, time
from simulator.cli.outputs import StagedOutput
from simulator.cli.signals import SignalGuard
with SignalGuard() as guard:
    guard.output_folder = sys.argv[1]
    with StagedOutput(sys.argv[1]) as staged:
        staged.path("timeline.json").write_text("new")
        with guard.held():  # a cleanup that never returns: the signal is only recorded
            print("staged", flush=True)
            while True:
                time.sleep(0.01)
"""


def test_a_cleanup_that_does_not_return_still_ends_the_run_within_the_grace(tmp_path):
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", STUCK, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        preexec_fn=as_in_a_terminal,
    )
    try:
        assert child.stdout.readline() == "staged\n"  # the event: a file is staged
        sent = time.monotonic()
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=scaled(60))
        took = time.monotonic() - sent
    finally:
        child.kill()
    assert child.returncode == 128 + signal.SIGTERM, err
    assert err.splitlines() == ["pebblesim: interrupted (SIGTERM)"]
    assert GRACE <= took < GRACE + scaled(EXIT_WITHIN)
    assert list(out.iterdir()) == [], "the staging folder outlived the run"


def agents_up(titles: list[str]) -> bool:
    """Ray's agents are what outlived a killed driver before (and the workers, after them)."""
    return any("RuntimeEnvAgent" in t for t in titles) and any("Dashboard" in t for t in titles)


def next_command(run: Run) -> list[str]:
    """The stderr lines of a quick command run after ``run``, with the same run records."""
    args = ("simulate", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "4")
    done = subprocess.run(
        [sys.executable, "-m", "simulator.cli", *args],
        capture_output=True,
        text=True,
        env=run.env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_a_driver_killed_with_sigkill_leaves_its_ray_to_its_launcher(tmp_path):
    run = Run(tmp_path, TRAIN)
    try:
        run.wait_for(agents_up, scaled(120))
        launcher = (run.launcher, start_time(run.launcher))
        run.child.kill()
        run.child.wait()
        deadline = time.monotonic() + scaled(EXIT_WITHIN)
        while session_members(run.launcher) and time.monotonic() < deadline:
            time.sleep(POLL)
        assert not session_members(run.launcher), "the launcher left Ray's processes running"
        assert not is_alive(*launcher)
    finally:
        run.kill()
    assert next_command(run) == [], "there was nothing left to end and say"
    assert not list(run.state.glob("ray-*")), "the next command did not remove the record"


def test_what_a_killed_driver_and_launcher_left_the_next_command_ends_and_says(tmp_path):
    run = Run(tmp_path, TRAIN)
    try:
        run.wait_for(agents_up, scaled(120))
        session = run.launcher
        os.kill(session, signal.SIGKILL)
        run.child.kill()
        run.child.wait()
        left = session_members(session)
        assert left, "Ray 2.60's agents outlive their raylet (they report its death to a GCS "
        "that died with it, retrying for a minute); here nothing was left to end"
        for pid in left:  # held as they are: on a busy machine they could give up on their own
            with contextlib.suppress(OSError):  # while the next command starts
                os.kill(pid, signal.SIGSTOP)
        lines = next_command(run)
        assert session_members(session) == {}
    finally:
        run.kill()
    pattern = r"pebblesim: ended \d+ process(es)? of the local Ray that a killed run left behind"
    assert len(lines) == 1 and re.fullmatch(rf"{pattern} \(pid {run.child.pid}\)", lines[0])
    assert not list(run.state.glob("ray-*"))


# advise with two workers on a search that bounds and simulates for seconds
ADVISE = (
    "advise", "--model", "llama3-405b", "--hardware", "h100-80gb", "--gpus", "16384",
    "--global-batch", "2048", "--jobs", "2",
)  # fmt: skip


def workers_up(run: Run):
    return lambda titles: len(titles) >= 2  # the forked workers: the driver's only children


@pytest.mark.parametrize(("signum", "group"), [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_a_signal_while_advise_workers_run_ends_them_with_the_run(tmp_path, signum, group):
    """Ctrl-C reaches the workers too (they ignore it; the driver ends them on its way out);
    SIGTERM to the driver alone ends them the same way."""
    run = Run(tmp_path, ADVISE)
    try:
        run.wait_for(workers_up(run), scaled(60))
        took = run.interrupt(signum, group)
    finally:
        run.kill()
    check_interrupted(run, signum, took)


def test_advise_workers_end_when_their_driver_is_killed_with_sigkill(tmp_path):
    """The driver cannot end anything after SIGKILL; the kernel ends its workers
    (``PR_SET_PDEATHSIG``)."""
    run = Run(tmp_path, ADVISE)
    try:
        run.wait_for(workers_up(run), scaled(60))
        run.child.kill()
        run.child.wait()
        deadline = time.monotonic() + scaled(EXIT_WITHIN)
        while run.alive() and time.monotonic() < deadline:
            time.sleep(POLL)
    finally:
        run.kill()
    assert run.alive() == [], "a worker outlived its killed driver"
