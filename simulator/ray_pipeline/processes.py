"""Processes named so that a reused pid cannot be mistaken for them, and sessions ended whole.

Why: a local Ray is a dozen processes (GCS, raylet, dashboard agent, runtime-env agent, log
monitor, one worker per actor) that re-parent to init when their parent dies and put each worker
in a process group of its own, so neither the parent's tree nor a process group holds all of
them. A *session* does: pebblesim starts its local Ray as the leader of a new session, every
process Ray starts inherits that session, and Linux does not hand the session's number to a new
process while any member lives. Ending "every process of session S" ends that Ray and nothing
else. A pid alone is not a name (pids are reused), so a process is (pid, start time).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rsplit(b")", 1)[1].split()


def start_time(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (0 where unknown: gone, or not Linux)."""
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, IndexError, ValueError):
        return 0


def is_alive(pid: int, started: int) -> bool:
    """Whether the process that started at ``started`` still runs as ``pid`` (a zombie does
    not run: its parent has only not collected it yet)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return False
    return fields[0] != b"Z" and (not started or int(fields[19]) == started)


def boot_id() -> str:
    """This boot's identity: a record from an earlier boot names pids that mean nothing now."""
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def session_members(session: int) -> dict[int, int]:
    """Every live process of ``session`` (its leader's pid), as pid -> start time."""
    found = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(int(entry))
            if int(fields[3]) == session and fields[0] != b"Z":
                found[int(entry)] = int(fields[19])
        except (OSError, IndexError, ValueError):
            continue
    return found


def end_session(session: int, keep: int | None = None, patience: float = 3.0) -> int:
    """SIGKILL every process of ``session`` but ``keep``, again until none is left (a raylet
    can start a worker between two sweeps) or ``patience`` seconds passed; returns how many
    processes were killed."""
    killed: set[tuple[int, int]] = set()
    deadline = time.monotonic() + patience
    while True:
        members = {p: s for p, s in session_members(session).items() if p != keep}
        if not members or time.monotonic() > deadline:
            return len(killed)
        for pid, started in members.items():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            killed.add((pid, started))
        time.sleep(0.02)  # SIGKILL is delivered at once; the exit takes a moment
