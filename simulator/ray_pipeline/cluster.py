"""Joining a Ray cluster, or starting a local one sized for the pipeline (in a session of its
own, ``local_ray``).

Why a module of its own: a wrong address must fail in one sentence within a bounded time, and
Ray's own client would retry a non-Ray port for ever; that logic has nothing to do with training.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import schedules
from simulator.errors import PebbleError
from simulator.ray_pipeline.local_ray import seconds_from_env, start_owned_ray, stop_owned_ray
from simulator.ray_pipeline.ray_messages import route_ray_messages_to_stderr
from simulator.ray_pipeline.worker import BLAS_ENV

SIMULATOR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../simulator


def _check_reachable(address: str) -> None:
    """Fail fast, in one sentence, on a host:port nobody answers on."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise PebbleError(
            f"cannot read Ray address {address!r}; use host:port, ray://host:port or auto."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise PebbleError(f"no Ray cluster answers at {address} ({exc.strerror or exc}).") from None


_PROBE = "import sys, ray; ray.init(address=sys.argv[1], logging_level='ERROR'); ray.shutdown()"


def _probe_cluster(address: str) -> None:
    """Join the cluster once in a child process, within a time limit.

    Why a child: Ray's client retries a port that accepts connections but is not a Ray cluster
    for ever, printing as it goes. A child can be stopped and its noise kept out of sight.
    """
    timeout = seconds_from_env("PEBBLESIM_CONNECT_TIMEOUT", 30.0)
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise PebbleError(f"no Ray cluster answered at {address} within {timeout:g} s.") from None
    if probe.returncode != 0:
        if "InvalidAuthToken" in probe.stderr or "Unauthenticated" in probe.stderr:
            raise PebbleError(
                f"the Ray cluster at {address} requires token authentication: set "
                "RAY_AUTH_MODE=token (Ray reads the token from RAY_AUTH_TOKEN or its default "
                "file; `ray get-auth-token` prints it) or use --address auto on the head node."
            )
        lines = [line for line in probe.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1].split(": ", 1)[-1] if lines else f"exit code {probe.returncode}"
        raise PebbleError(f"cannot join the Ray cluster at {address}: {reason}")


def ensure_ray(address: str | None, num_actors: int) -> bool:
    """Connect to ``address`` or start a local Ray sized for ``num_actors``; True if started."""
    import ray

    route_ray_messages_to_stderr()  # stdout stays ours (``--json``), even on a shared Ray
    if ray.is_initialized():
        return False
    if address:
        if address != "auto":
            _check_reachable(address)
        _probe_cluster(address)
        try:
            ray.init(
                address=address,
                logging_level="ERROR",
                runtime_env={"py_modules": _package_dirs(), "env_vars": BLAS_ENV},
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PebbleError(f"cannot join the Ray cluster at {address}: {first}") from None
        return True
    os.environ.update(BLAS_ENV)  # the local Ray's workers inherit this: one BLAS thread each
    address = start_owned_ray(max(num_actors, os.cpu_count() or 1))
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except BaseException:
        stop_owned_ray()
        raise
    return True


def stop_ray() -> None:
    """Leave Ray, and end the local Ray this process started (if it started one)."""
    import ray

    try:
        ray.shutdown()
    finally:
        stop_owned_ray()


def _package_dirs() -> list[str]:
    """The project's source folders (``simulator`` holds this file; ``schedules`` is beside it)."""
    return [SIMULATOR_DIR, os.path.dirname(schedules.__file__)]
