"""The local Ray a run starts: a session it owns, a record of it, and its end.

Why: a run that starts Ray must leave no process behind, whatever ends it. Ray's own
``ray.init`` starts its processes in the driver's process group (a group signal kills GCS and
raylet under the driver, which then waits 60 s for them) and ties only some of them to the
driver (Ray 2.60 kills GCS, raylet and the monitors with the driver, but its dashboard and
runtime-env agents and its workers outlive it). So the run starts Ray in a launcher
(``ray_head``) that leads a session of its own and joins it by address:

- a normal end, or a signal, ends every process of that session (``stop_owned_ray``);
- a driver killed with SIGKILL closes the launcher's stdin, and the launcher ends the session;
- if the launcher died too (both killed), the record this module writes before starting it
  names the session, and the next pebblesim command ends what is left (``reap_abandoned``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from simulator.ray_pipeline.processes import boot_id, end_session, is_alive, start_time

STATE_DIR_ENV = "PEBBLESIM_STATE_DIR"  # where run records live (tests point it at a tmp folder)
START_TIMEOUT_ENV = "PEBBLESIM_RAY_START_TIMEOUT"
RECORD_PREFIX = "ray-"
_owned: OwnedRay | None = None  # the local Ray this process started and has not ended


def seconds_from_env(name: str, default: float) -> float:
    """A time limit in seconds from the environment variable ``name``; one sentence if it is
    not a positive finite number."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        from simulator.errors import PebbleError  # start-up: the CLI's signal guard imports this

        raise PebbleError(f"{name} must be a positive number of seconds, got {text!r}.")
    return seconds


def state_dir() -> Path:
    """The folder of this user's run records."""
    default = Path(tempfile.gettempdir()) / f"pebblesim-{os.getuid()}"
    return Path(os.environ.get(STATE_DIR_ENV) or default)


@dataclass(frozen=True)
class RayRecord:
    """What a run wrote down about the local Ray it started: enough for another process to end
    that Ray once the run is gone."""

    owner_pid: int
    owner_start: int
    session: int  # the launcher's pid, which is the session's number
    boot: str

    def abandoned(self) -> bool:
        """Whether the run that owns this Ray has ended (in this boot: pids of an earlier boot
        name nothing now)."""
        return self.boot == boot_id() and not is_alive(self.owner_pid, self.owner_start)


class OwnedRay:
    """A local Ray started in a session of its own; ``address`` joins it."""

    def __init__(self) -> None:
        self.record_path = state_dir() / f"{RECORD_PREFIX}{os.getpid()}-{start_time(os.getpid())}"
        self.log_path = self.record_path.with_suffix(".log")
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # start, never join
        with open(self.log_path, "wb") as log:
            self.launcher = subprocess.Popen(
                [sys.executable, "-m", "simulator.ray_pipeline.ray_head"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        record = RayRecord(os.getpid(), start_time(os.getpid()), self.launcher.pid, boot_id())
        self.record_path.write_text(json.dumps(record.__dict__))
        self.address = ""
        self.sized = False

    def size(self, num_cpus: int) -> None:
        """Tell the launcher (importing Ray meanwhile) how many CPUs the Ray it starts has."""
        self.launcher.stdin.write(f"{num_cpus}\n".encode())
        self.launcher.stdin.flush()
        self.sized = True

    def wait_ready(self) -> str:
        """The GCS address, once the launcher says Ray is up; one sentence if it never is."""
        from simulator.errors import PebbleError  # start-up: the CLI's signal guard imports this

        timeout = seconds_from_env(START_TIMEOUT_ENV, 300.0)
        deadline = time.monotonic() + timeout
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.launcher.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PebbleError(f"the local Ray did not start within {timeout:g} s.")
                if not selector.select(timeout=min(left, 1.0)):
                    continue
                chunk = os.read(self.launcher.stdout.fileno(), 4096)
                if not chunk:
                    raise PebbleError(f"the local Ray did not start: {self._last_log_line()}")
                line += chunk
        self.address = json.loads(line)["address"]
        return self.address

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [s for s in self.log_path.read_text(errors="replace").splitlines() if s]
            if lines:
                return lines[-1].split(": ", 1)[-1]
        return f"its launcher exited with code {self.launcher.wait()}"

    def stop(self) -> int:
        """End every process of the session, the launcher last; returns how many were alive."""
        ended = end_session(self.launcher.pid, keep=self.launcher.pid)
        with contextlib.suppress(OSError):
            self.launcher.stdin.close()
        self.launcher.kill()
        self.launcher.wait()
        self.launcher.stdout.close()
        for path in (self.record_path, self.log_path):
            with contextlib.suppress(OSError):
                path.unlink()
        return ended + 1


def warm_owned_ray() -> None:
    """Start the launcher now, so that it imports Ray while this process is still loading
    (seconds on a busy machine); ``start_owned_ray`` then only sizes and starts it."""
    global _owned
    if _owned is None:
        _ask_for_a_token()
        _owned = OwnedRay()


def start_owned_ray(num_cpus: int) -> str:
    """Start a local Ray this process owns, in the warm launcher if there is one; returns its
    address (ends it on any failure)."""
    global _owned
    if _owned is not None and _owned.sized:
        stop_owned_ray()  # one started before: a new run gets a new Ray
    try:
        warm_owned_ray()
        _owned.size(num_cpus)
        return _owned.wait_ready()
    except BaseException:
        stop_owned_ray()
        raise


def _ask_for_a_token() -> None:
    """Start the local Ray with token authentication, as Ray's own local start does, and have
    this process join it with the token: what ``ray.init`` does before it starts a local Ray
    (``_enable_token_auth``: the variable, then Ray's cached config read again). A mode the
    user set is kept."""
    if os.environ.get("RAY_AUTH_MODE") is not None:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    if "ray" in sys.modules:
        with contextlib.suppress(ImportError, AttributeError):
            from ray._raylet import Config

            Config.initialize("")


def stop_owned_ray() -> None:
    """End the local Ray this process started, if any."""
    global _owned
    owned, _owned = _owned, None
    if owned is not None:
        owned.stop()


def owns_ray() -> bool:
    return _owned is not None


def reap_abandoned() -> list[tuple[int, int]]:
    """End the local Rays whose runs are gone; returns (run's pid, processes ended) for each
    that still had processes. A record from another boot is only removed."""
    reaped = []
    try:
        paths = sorted(state_dir().glob(f"{RECORD_PREFIX}*[0-9]"))
    except OSError:
        return reaped
    for path in paths:
        try:
            record = RayRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours to read
        if record.boot and record.boot != boot_id():
            _unlink(path)
        elif record.abandoned():
            ended = end_session(record.session)
            _unlink(path)
            if ended:
                reaped.append((record.owner_pid, ended))
    return reaped


def _unlink(record: Path) -> None:
    for path in (record, record.with_suffix(".log")):
        with contextlib.suppress(OSError):
            path.unlink()
