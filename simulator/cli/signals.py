"""SIGTERM, SIGINT and SIGHUP during a command: one sentence, exit 128+n, cleanup that runs.

Why: a signal's default action ends the process at once, so ``with`` blocks never unwind:
staging folders stay behind and a local Ray started by pebblesim outlives it. ``SignalGuard``
turns the three signals (a job scheduler's or ``timeout``'s SIGTERM, Ctrl-C, a closed terminal
or ssh connection) into ``Interrupted`` (a ``KeyboardInterrupt``, so every library treats it as
Ctrl-C) raised in the main thread; the stack unwinds, staged outputs are removed, and on the way
out the guard ends the local Ray this run started (``ray_pipeline.local_ray``: it runs in a
session of its own, so a signal sent to the driver's process group never reaches it, and ending
that session ends all of it) and whatever else this run started. A signal the caller ignores
stays ignored (``nohup`` ignores SIGHUP, a script's background job SIGINT): that run was asked
to survive it. The guard is in place before anything but the standard library loads (numpy and
the rest load under it, ``cli.main``), so the window in which a signal still has its default
action is the interpreter's own start-up.

Ray is kept from undoing this while a guard is active (``_tame_ray``):

- ``ray.init`` installs Python SIGTERM handlers that exit with code 1 or 15; wrapping
  ``ray._private.utils.set_sigterm_handler`` keeps ours in place.
- Ray's C++ core installs a failure-signal handler that prints a stack dump on SIGTERM;
  ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER`` is set while Ray is imported (only in this process, so
  Ray's workers keep theirs).
- An exception raised inside ``ray.init`` while it builds its C++ core worker leaves that worker
  half-made, and it crashes the process at exit (SIGSEGV). So a signal that arrives during
  ``ray.init`` (joining the started Ray: a fraction of a second) is held until it returns.

Cleanup is bounded: ``GRACE`` seconds after the first signal, a run still cleaning up (a Ray call
that does not return) ends its local Ray and its staging folder from another thread, says the
one sentence and exits. A second signal while cleanup runs does the same at once: the user asked
twice.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import sys
import threading

# The standard library and these two only: the guard is in place before numpy loads.
from simulator.ray_pipeline.local_ray import reap_abandoned, stop_owned_ray, warm_owned_ray
from simulator.ray_pipeline.processes import start_time as process_start

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE = 4.0  # seconds from the first signal to the exit, whatever the cleanup is waiting for
RAY_DUMP_SWITCH = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
_current: SignalGuard | None = None  # the guard in force (in the main thread), if any


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (129 SIGHUP, 130 SIGINT, 143 SIGTERM)."""
    return 128 + signum


def descendants(pid: int) -> dict[int, int]:
    """Every live process below ``pid`` (Linux ``/proc``), as pid -> start time."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                parent = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = {}, list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if child not in found:
            found[child] = process_start(child)
            todo += children.get(child, [])
    return found


def _kill_new(before: dict[int, int]) -> None:
    """SIGKILL the descendants that appeared since ``before`` and are still alive."""
    for pid, start in descendants(os.getpid()).items():
        if before.get(pid) == start or process_start(pid) != start:
            continue
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _import_ray():
    """Import Ray with its C++ stack dump on SIGTERM switched off (read at import)."""
    previous = os.environ.get(RAY_DUMP_SWITCH)
    os.environ[RAY_DUMP_SWITCH] = "1"
    try:
        import ray
        from ray._private import utils
    except ImportError:
        return None, None
    finally:
        if previous is None:
            os.environ.pop(RAY_DUMP_SWITCH, None)  # Ray's workers keep their own handler
        else:
            os.environ[RAY_DUMP_SWITCH] = previous
    return ray, utils


def _tame_ray() -> None:
    """Keep Ray's SIGTERM handlers out and hold signals during ``ray.init`` while a guard is in
    force (see the module docstring). Idempotent."""
    ray, utils = _import_ray()
    if ray is None or getattr(ray.init, "pebblesim", False):
        return
    set_handler, init = getattr(utils, "set_sigterm_handler", None), ray.init

    def set_sigterm_handler(handler) -> None:
        if _current is None and set_handler is not None:
            set_handler(handler)

    @functools.wraps(init)
    def guarded_init(*args, **kwargs):
        if _current is None:
            return init(*args, **kwargs)
        with _current.held():
            return init(*args, **kwargs)

    guarded_init.pebblesim = True
    if set_handler is not None:
        utils.set_sigterm_handler = set_sigterm_handler
    ray.init = guarded_init


def _ray_running() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())


def _remove_own_staging(folder: str | None) -> None:
    """Remove the staging folders this process made in ``folder`` (named after its pid and
    start time, see ``outputs.StagedOutput``)."""
    if not folder:
        return
    from simulator.cli.outputs import STAGING_PREFIX  # start-up: outputs loads numpy

    mine = f"_{os.getpid()}_{process_start(os.getpid())}_"
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name.startswith(STAGING_PREFIX) and mine in entry.name:
                shutil.rmtree(entry.path, ignore_errors=True)


def reap_abandoned_runs() -> None:
    """End what killed runs left of their local Ray, and say so in one line."""
    reaped = reap_abandoned()
    if reaped:
        count = sum(n for _, n in reaped)
        runs = ", ".join(str(pid) for pid, _ in reaped)
        _say(
            f"pebblesim: ended {count} process{'es' * (count != 1)} of the local Ray that a "
            f"killed run left behind (pid {runs})"
        )


def _say(line: str) -> None:
    """One line on stderr; a closed terminal (SIGHUP) cannot take it, and that is no error."""
    _flush_or_discard(sys.stdout)
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
    _flush_or_discard(sys.stderr)


def _flush_or_discard(stream) -> None:
    """Flush ``stream``; if its terminal is gone, point it at /dev/null so that the flush at
    exit does not fail again (Python would report that and exit with code 120)."""
    try:
        stream.flush()
    except (OSError, ValueError):
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
            stream.flush()


class SignalGuard:
    """Context manager for one command: SIGINT/SIGTERM/SIGHUP raise ``Interrupted`` inside it.

    ``signum`` is the first signal received (or None). Call ``prepare_ray`` inside the block
    when the command may start Ray: Ray is then imported with its handlers kept off, and on
    exit the Ray this run started is ended. ``output_folder`` names the folder the command
    stages its outputs in, for the cleanup that must not wait (``GRACE``).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.output_folder: str | None = None
        self._raising = False
        self._previous: dict[int, object] = {}
        self._uses_ray = False
        self._children: dict[int, int] = {}
        self._outer: SignalGuard | None = None
        self._deadline: threading.Timer | None = None
        self._said = threading.Lock()

    def __enter__(self) -> SignalGuard:
        global _current
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may handle signals; leave them as they are
        self._previous = {s: signal.getsignal(s) for s in SIGNALS}
        for signum, handler in self._previous.items():
            if handler is not signal.SIG_IGN:  # ignored by the caller (nohup): stays ignored
                signal.signal(signum, self._handle)
        self._outer, _current = _current, self
        self._raising = True
        return self

    def prepare_ray(self, local: bool = False) -> None:
        """Note what runs now, start the launcher of a ``local`` Ray (it imports Ray while this
        process loads), and import Ray with its signal handlers kept off (inside the block:
        importing takes a while, and a signal may arrive meanwhile)."""
        if not self._previous or _ray_running():
            return  # not the main thread, or a Ray that someone else started and will stop
        self._children = descendants(os.getpid())
        self._uses_ray = True
        if local:
            warm_owned_ray()
        _tame_ray()

    @contextlib.contextmanager
    def held(self):
        """Inside, a signal is recorded but not raised; it is raised on the way out."""
        raising, self._raising = self._raising, False
        try:
            yield
        finally:
            self._raising = raising
        if raising and self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:
            self._abandon()  # asked twice: do not wait for the cleanup
        self.signum = signum
        self._deadline = threading.Timer(GRACE, self._abandon)
        self._deadline.daemon = True
        self._deadline.start()
        if self._raising:
            raise Interrupted(signum)

    def _abandon(self) -> None:
        """End the run now, from whichever thread: its local Ray, what else it started, its
        staging folder; then the one sentence, and exit."""
        with contextlib.suppress(Exception):
            stop_owned_ray()
        if self._uses_ray:
            with contextlib.suppress(Exception):
                _kill_new(self._children)
        _remove_own_staging(self.output_folder)
        self.say()
        os._exit(exit_code(self.signum or signal.SIGTERM))

    def say(self) -> None:
        """The one sentence of an interrupted run (said once, whoever says it first)."""
        if self._said.acquire(blocking=False):
            _say(f"pebblesim: interrupted ({signal_name(self.signum)})")

    def note(self, signum: int) -> None:
        """Record an interruption that did not come through the handler (a plain Ctrl-C)."""
        if self.signum is None:
            self.signum = signum

    def __exit__(self, exc_type, exc, tb) -> None:
        global _current
        self._raising = False  # from here a signal is recorded, not raised: cleanup finishes
        if not self._previous:
            return
        try:
            if self._uses_ray:
                self._stop_ray()
        finally:
            _current = self._outer
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
            if self._deadline is not None:
                self._deadline.cancel()

    def _stop_ray(self) -> None:
        """Leave Ray and end the local Ray this run started; after an interruption, also end
        whatever else this run started."""
        ray = sys.modules.get("ray")
        interrupted = self.signum is not None
        if ray is not None and (interrupted or ray.is_initialized()):
            # best effort: the sentence about the signal is what matters
            with contextlib.suppress(Exception):
                ray.shutdown()
        stop_owned_ray()
        if interrupted:
            _kill_new(self._children)
