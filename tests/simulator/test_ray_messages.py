"""Ray's driver-side messages go to stderr, so ``--json`` output on stdout stays one document.

A raylet warning ("N PYTHON worker processes have been started ...") printed to stdout once
broke ``train --check --json`` in CI; this replays such a message through Ray's own printer.
"""

from __future__ import annotations

import ray._private.worker as ray_worker

from simulator.ray_pipeline.ray_messages import route_ray_messages_to_stderr

WARNING = "WARNING: 9 PYTHON worker processes have been started on node: abc"


def test_a_raylet_warning_goes_to_stderr(capsys):
    route_ray_messages_to_stderr()
    route_ray_messages_to_stderr()  # twice is the same as once
    ray_worker.print_to_stdstream(
        {"lines": [WARNING], "pid": "raylet", "is_err": False}, ignore_prefix=False
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert WARNING in err
