"""``python -m simulator.ray_pipeline.ray_head``: start a local Ray and end it with its owner.

Why a process of its own: a Ray started inside the driver shares the driver's process group, so
the SIGTERM a job scheduler or ``timeout`` sends to that group kills Ray's GCS and raylet under
the driver, whose Ray client then waits 60 s for a GCS that is gone. Started here, as the leader
of a new session (``local_ray`` does that), Ray sees no signal meant for the driver's group, and
the driver ends it when it has finished with it.

Protocol: the first line on stdin is the number of CPUs (the launcher imports Ray meanwhile, so
the driver can start it early and size it later). The one line this prints on stdout is JSON,
``{"address": ..., "session_dir": ...}``, once Ray is up. When stdin closes (the driver closed
it, or the driver died, even by SIGKILL), every other process of this session is killed and this
one exits, at any moment, including while Ray is still starting.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading

from simulator.ray_pipeline.processes import end_session


def _end_with_owner(sized: queue.SimpleQueue) -> None:
    """Pass on the first line (the CPUs), block until stdin closes, then end this session's
    processes and this one."""
    sized.put(sys.stdin.buffer.readline())
    while sys.stdin.buffer.read(65536):
        pass
    end_session(os.getsid(0), keep=os.getpid())
    os._exit(0)


def main() -> None:
    sized: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_end_with_owner, args=(sized,), name="owner", daemon=True).start()
    import ray  # after the watch on the owner starts: importing Ray takes seconds

    cpus = sized.get()
    if not cpus.strip():  # the owner left before it asked for a Ray: the watch ends this
        threading.Event().wait()
    context = ray.init(
        num_cpus=int(cpus),
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
    )
    info = context.address_info
    print(json.dumps({"address": info["gcs_address"], "session_dir": info["session_dir"]}))
    sys.stdout.flush()
    threading.Event().wait()  # the owner thread ends the process


if __name__ == "__main__":
    main()
