"""Reading an input file without trusting it: a regular file or a pipe, never a directory or a
device, and never more than a limit of bytes.

Why in ``schedules``: it is the bottom layer, and both a schedule CSV (here) and a Timeline or
profile JSON (``simulator.timeline.json_values``) are read this way; one piece serves both.
"""

from __future__ import annotations

import os
import stat

from schedules.errors import PebbleError

CHUNK_BYTES = 1 << 20


def read_bounded(
    path, label: str, what: str, limit: int, limit_name: str, error: type = PebbleError
) -> bytes:
    """The bytes of ``path`` (a regular file or a pipe), at most ``limit`` of them.

    A directory, a device, or too many bytes raise ``error`` with one sentence naming
    ``label`` (how messages name the file) and ``what`` (``CSV``, ``Timeline``, ...).
    ``OSError`` (a missing file, no permission) is left to the caller, which words it.
    """
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{label} is a directory, not a {what} file.")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        raise error(f"{label} is a device or socket, not a {what} file.")
    if info.st_size > limit:
        raise error(
            f"{label} is {info.st_size} bytes, over the {limit}-byte limit for a {what} file "
            f"({limit_name})."
        )
    chunks, size = [], 0
    with open(path, "rb") as handle:  # in pieces: read(limit + 1) would reserve the limit at once
        while size <= limit and (chunk := handle.read(min(CHUNK_BYTES, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:  # a pipe has no size up front
        raise error(f"{label} is over the {limit}-byte limit for a {what} file ({limit_name}).")
    return data
