"""Writing a run's files so that a failed run leaves earlier outputs intact.

Why: "nothing is lost" is a promise. Files are written into a staging folder next to the target
and moved into place one by one (``os.replace`` is atomic per file) only after the run succeeded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from simulator.errors import PebbleError


class StagedOutput:
    """Context manager: ``path(name)`` gives a staging path; on success files move to ``out``."""

    def __init__(self, out: str | os.PathLike | None):
        self.out = Path(out) if out is not None else None
        self.staging: Path | None = None
        self.written: list[Path] = []

    def __enter__(self) -> StagedOutput:
        if self.out is None:
            return self
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PebbleError(f"cannot create output folder {self.out} ({exc.strerror}).") from None
        if not os.access(self.out, os.W_OK):
            raise PebbleError(f"cannot write to output folder {self.out}.")
        self.staging = Path(tempfile.mkdtemp(prefix=".pebblesim-staging-", dir=self.out))
        return self

    def path(self, name: str) -> Path:
        if self.staging is None:
            raise RuntimeError("no output folder was given")
        target = self.staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.staging is None:
            return
        try:
            if exc_type is None:
                for staged in sorted(self.staging.rglob("*")):
                    if staged.is_file():
                        final = self.out / staged.relative_to(self.staging)
                        final.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(staged, final)
                        self.written.append(final)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)
