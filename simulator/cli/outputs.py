"""Writing a run's files so that a failed run leaves earlier outputs intact.

Why: "nothing is lost" is a promise. Files are written into a staging folder next to the target
and moved into place (``os.replace`` is atomic per file) only after the run succeeded. Rules:

- Only regular files are replaced. A destination that is a folder, a symbolic link or a special
  file (device, FIFO, socket) fails the run with one sentence before anything is replaced, so a
  run replaces all of its outputs or none. (A single-file output, ``write_output_file``, writes
  *through* to a character device or FIFO instead, as a shell redirection would: ``-o
  /dev/null`` discards, and the device stays a device.)
- ``-`` means stdout. A path ending in ``/`` or naming a folder is refused: give a file name.
- A staging folder's name carries its owner (host, pid, process start time); one whose owner is
  gone is removed by the next run into that folder (see ``remove_stale_staging``).
- A failed run removes the output folder it created, if it left it empty.
- A full disk is one sentence that names the file.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from pathlib import Path

from simulator.errors import PebbleError

STAGING_PREFIX = ".pebblesim-staging-"
# A staging folder whose owner cannot be told (another host, an older pebblesim) is stale once
# nothing in it changed for this long: no run keeps its staging folder untouched for a day.
STALE_AFTER = 24 * 3600.0
_OWNER = re.compile(rf"^{re.escape(STAGING_PREFIX)}([A-Za-z0-9]*)_(\d+)_(\d+)_")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]


def process_start(pid: int) -> int:
    """The start time of ``pid`` in clock ticks since boot (Linux), or 0 where unknown; with the
    pid it names a process even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return 0


def _alive(pid: int, start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    now = process_start(pid)
    return not (start and now and now != start)


def _is_stale(folder: Path) -> bool:
    match = _OWNER.match(folder.name)
    if match and match.group(1) == _host():
        return not _alive(int(match.group(2)), int(match.group(3)))
    try:
        return time.time() - folder.stat().st_mtime > STALE_AFTER
    except OSError:
        return False


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders a killed run left in ``folder``; returns what was removed."""
    removed = []
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(STAGING_PREFIX)]
    except OSError:
        return removed
    for candidate in candidates:
        if candidate.is_dir() and not candidate.is_symlink() and _is_stale(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


def disk_full_error(exc: OSError, name: str | os.PathLike | None = None) -> PebbleError:
    """One sentence for ENOSPC/EDQUOT, naming the file."""
    what = "the disk quota is exceeded" if exc.errno == errno.EDQUOT else "the disk is full"
    where = name or exc.filename or "an output file"
    return PebbleError(f"cannot write {where}: {what}; free some space and run again.")


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "a special file")


def check_destination(final: Path, out: Path) -> None:
    """Refuse ``final`` unless it is absent or a regular file, and every folder between ``out``
    and it is absent or a real folder."""
    for parent in reversed(final.relative_to(out).parents[:-1]):
        here = out / parent
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            break
        if not stat.S_ISDIR(mode):
            raise PebbleError(f"cannot write {final}: {here} is {_kind(mode)}, not a folder.")
    try:
        mode = os.lstat(final).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise PebbleError(f"cannot write {final} ({exc.strerror}).") from None
    if not stat.S_ISREG(mode):
        raise PebbleError(
            f"{final} is {_kind(mode)}; pebblesim replaces only regular files, so move it "
            "away or choose another output folder."
        )


class _SignalsDeferred:
    """Hold SIGINT/SIGTERM/SIGHUP while files are moved into place, so an interrupted run cannot
    stop between two replacements; a held signal is delivered on exit."""

    SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

    def __enter__(self):
        self.old = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)
        return self

    def __exit__(self, *exc) -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet."""
    missing = None
    for candidate in (folder, *folder.parents):
        if os.path.lexists(candidate):
            break
        missing = candidate
    return missing


def _remove_if_empty(created: Path | None, folder: Path) -> None:
    """Remove ``folder`` and its parents up to ``created`` while they are empty."""
    if created is None:
        return
    for candidate in (folder, *folder.parents):
        try:
            candidate.rmdir()
        except OSError:
            return
        if candidate == created:
            return


class StagedOutput:
    """Context manager: ``path(name)`` gives a staging path; on success files move to ``out``.

    ``written`` lists the final paths after a successful exit. ``staging`` is the staging folder
    (callers may write a tree into it directly).
    """

    def __init__(self, out: str | os.PathLike | None):
        self.out = Path(out) if out is not None else None
        self.staging: Path | None = None
        self.written: list[Path] = []
        self._created: Path | None = None

    def __enter__(self) -> StagedOutput:
        if self.out is None:
            return self
        out = self.out
        if os.path.lexists(out) and not out.is_dir():
            raise PebbleError(f"output folder {out} exists and is not a folder.")
        self._created = _first_missing(out.absolute())
        try:
            out.mkdir(parents=True, exist_ok=True)
            if not os.access(out, os.W_OK | os.X_OK):
                raise PebbleError(f"cannot write to output folder {out}.")
            remove_stale_staging(out)
            prefix = f"{STAGING_PREFIX}{_host()}_{os.getpid()}_{process_start(os.getpid())}_"
            self.staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out))
        except OSError as exc:
            _remove_if_empty(self._created, out.absolute())
            if exc.errno in DISK_FULL:
                raise disk_full_error(exc, out) from None
            raise PebbleError(f"cannot create output folder {out} ({exc.strerror}).") from None
        except BaseException:
            _remove_if_empty(self._created, out.absolute())
            raise
        return self

    def path(self, name: str) -> Path:
        if self.staging is None:
            raise RuntimeError("no output folder was given")
        target = self.staging / name
        if self.staging.resolve() not in target.resolve().parents:
            raise PebbleError(f"output name {name!r} leaves the output folder.")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _staged(self) -> list[tuple[Path, Path]]:
        """(staged file, final path) pairs, every destination checked before any is touched."""
        pairs = [
            (staged, self.out / staged.relative_to(self.staging))
            for staged in sorted(self.staging.rglob("*"))
            if staged.is_file() and not staged.is_symlink()
        ]
        for _, final in pairs:
            check_destination(final, self.out)
        return pairs

    def _commit(self) -> None:
        pairs = self._staged()
        for _, final in pairs:
            final.parent.mkdir(parents=True, exist_ok=True)
        with _SignalsDeferred():
            for staged, final in pairs:
                os.replace(staged, final)
                self.written.append(final)

    def _failed_file(self, exc: OSError) -> Path | None:
        """The final name of the file a full disk interrupted: the one the error names, else
        the one written last."""
        if exc.filename:
            try:
                return self.out / Path(exc.filename).relative_to(self.staging)
            except ValueError:
                return Path(exc.filename)
        files = [p for p in self.staging.rglob("*") if p.is_file()]
        if not files:
            return None
        newest = max(files, key=lambda p: p.stat().st_mtime_ns)
        return self.out / newest.relative_to(self.staging)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging is None:
            return
        committed = False
        try:
            if exc_type is None:
                self._commit()
                committed = True
            elif isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise disk_full_error(exc, self._failed_file(exc)) from None
        except OSError as error:
            if error.errno in DISK_FULL:
                raise disk_full_error(error, self._failed_file(error)) from None
            raise PebbleError(f"cannot write into {self.out} ({error.strerror}).") from None
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
            if not committed:
                _remove_if_empty(self._created, self.out.absolute())


def write_output_file(target: str | os.PathLike, text: str) -> Path | None:
    """Write ``text`` to the single file ``target`` atomically; ``-`` is stdout (returns None).

    A symbolic link is followed (the link stays, its target is replaced); a character device or
    FIFO is written through (``/dev/null`` stays a device); a folder, a name ending in ``/``, a
    block device or a socket is refused with one sentence.
    """
    name = os.fspath(target)
    if name == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    if not name:
        raise PebbleError("the output name is empty; give a file name, or - for stdout.")
    if name.endswith(("/", os.sep)) or os.path.isdir(name):
        raise PebbleError(
            f"-o {name!r} names a folder; give a file name, e.g. {os.path.join(name, 'x.csv')}."
        )
    try:
        mode = os.stat(name).st_mode  # follows links: /dev/stdout is a pipe, a tty or a file
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError as exc:
        raise PebbleError(f"cannot write {name} ({exc.strerror}).") from None
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        _write_through(name, text)
    elif stat.S_ISREG(mode):
        real = Path(os.path.realpath(name))  # replace a link's target, never the link
        with StagedOutput(real.parent) as out:
            out.path(real.name).write_text(text, encoding="utf-8")
    else:
        raise PebbleError(f"{name} is {_kind(mode)}; pebblesim writes only regular files.")
    return Path(name)


def _write_through(name: str, text: str) -> None:
    try:
        with open(name, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise disk_full_error(exc, name) from None
        raise PebbleError(f"cannot write {name} ({exc.strerror}).") from None
