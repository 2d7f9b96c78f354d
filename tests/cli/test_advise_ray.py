"""``advise --address``: the simulations run as Ray tasks on the suite's local Ray instance,
and the answer is exactly the local search's (rows, numbers and counts)."""

from __future__ import annotations

import json

from simulator.cli import main

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16"
ARGS = (
    "advise",
    "--model",
    MODEL,
    "--hardware",
    "a100-40gb",
    "--gpus",
    "8",
    "--global-batch",
    "8",
    "--memory-limit",
    "2MiB",
    "--top",
    "5",
    "--schedules",
    "1f1b,zb-h1,zb-v,auto",  # a loop, a split backward, a V and auto: every kind of task
)


def advise(folder, *extra) -> dict:
    """The search's answer as it writes it to ``advise.json`` (stdout is Ray's to wrap)."""
    code = main([*ARGS, "--out", str(folder), *extra])
    assert code == 0
    data = json.loads((folder / "advise.json").read_text())
    data.pop("elapsed", None)
    data.pop("seconds", None)
    return data


def test_advise_on_a_ray_cluster_gives_the_local_answer(ray_session, tmp_path):
    address = ray_session.get_runtime_context().gcs_address
    local = advise(tmp_path / "local")
    remote = advise(tmp_path / "ray", "--address", address)
    assert local["rows"] and remote["rows"] == local["rows"]
    assert remote == local
    assert ray_session.is_initialized(), "advise left the cluster it joined up"
