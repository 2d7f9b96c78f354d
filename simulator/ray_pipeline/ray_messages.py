"""Keep stdout for pebblesim's own output while Ray runs.

Why: Ray's driver prints the raylet's warnings (for example "9 PYTHON worker processes have
been started on node ...") to *stdout* from a background thread, whatever ``log_to_driver``
says. ``train --json`` promises a stdout that is one JSON document, and a warning printed in
the middle of it breaks every reader. So every message Ray's driver forwards is sent to
stderr, where the progress bar and the notes already go.
"""

from __future__ import annotations

_ROUTED = "_pebblesim_routed_to_stderr"


def route_ray_messages_to_stderr() -> None:
    """Make Ray's forwarded messages (raylet warnings, worker prints) go to stderr.

    Ray looks its printer up by name in ``ray._private.worker`` at each message, so replacing
    that one function covers the error-listener thread and the log handler alike. Safe to call
    more than once; a Ray without that function is left as it is.
    """
    try:
        import ray._private.worker as ray_worker
    except ImportError:  # pragma: no cover - Ray is a dependency
        return
    printer = getattr(ray_worker, "print_to_stdstream", None)
    if printer is None or getattr(printer, _ROUTED, False):
        return

    def to_stderr(data, ignore_prefix: bool):
        return printer({**data, "is_err": True}, ignore_prefix)

    setattr(to_stderr, _ROUTED, True)
    ray_worker.print_to_stdstream = to_stderr
