"""The cost profile's file check: what a profile.json may hold, field by field.

Apart from ``profile`` because it is a different job: ``profile`` measures costs from a run and
turns them into a cost model; this module only decides whether a file's values are a profile at
all (version, a model pebblesim reads, stages that tile it, finite non-negative seconds covering
every work part), so that a damaged or hand-edited file is one sentence naming the file, the
field and the value, before anything is built from it. It reads with the Timeline's generic JSON
and typed-value readers, as the Timeline's own check does.
"""

from __future__ import annotations

from schedules.dependencies import PIPELINE_RULE, DependencyRule
from schedules.kind_costs import uncovered
from simulator.errors import PebbleError
from simulator.model.parse import parse_model, recorded_model
from simulator.timeline.json_values import fields_of, integer, plain_list, real, show
from simulator.timeline.schema import MAX_MICROBATCH_ROWS, MAX_STAGES

PROFILE_VERSION = 1
MAX_RATE = 1e21  # bytes/s of a link (transfer.bandwidth): beyond any machine
MIN_RATE = 1e3  # bytes/s: a kilobyte a second, slower than a dial-up modem
MAX_CORES = 10**7
MAX_CALL_TIME = 60.0  # seconds of one Ray call's overheads: a minute is beyond any runtime
_FIELDS = ("version", "model", "microbatch_rows", "stages", "costs")
_OPTIONAL = (
    "transfer",
    "step_overhead",
    "cores",
    "call_overhead",
    "send_overhead",
    "call_cpu",
    "background_load",
    "outside_load",
)


def check_profile(data, label: str, rule: DependencyRule = PIPELINE_RULE) -> dict:
    """A profile's fields, checked: version 1; a model pebblesim reads; microbatch_rows >= 1;
    ``stages`` [first, last] layer ranges that tile that model in order; one cost object per
    stage with finite, non-negative seconds (null: not measured), F and I+W or B measured;
    transfer latency in 0..60 s and bandwidth in 1e3..1e21 bytes/s (absent: unlimited);
    step_overhead >= 0; call_overhead, send_overhead and call_cpu in 0..60 s; cores (null or
    absent: unknown) >= 1; background_load and outside_load in 0..cores, together below them.
    Returns them ready for ``Profile(**...)``; a fault is one sentence naming the field."""
    fields_of(data, "the profile", label, _FIELDS, _OPTIONAL)
    version = data["version"]
    if type(version) is not int or version != PROFILE_VERSION:
        raise PebbleError(
            f"{label}: version is {show(version)}; pebblesim reads cost profile version "
            f"{PROFILE_VERSION}."
        )
    rows = integer(
        data["microbatch_rows"],
        "microbatch_rows",
        label,
        1,
        MAX_MICROBATCH_ROWS,
        " (MAX_MICROBATCH_ROWS)",
    )
    stages = _check_stages(data["stages"], _layer_count(data["model"], label), label)
    costs = plain_list(data["costs"], "costs", label, MAX_STAGES, "MAX_STAGES")
    if len(costs) != len(stages):
        raise PebbleError(
            f"{label}: costs has {len(costs)} entries, but stages has {len(stages)}; "
            "give one per stage."
        )
    transfer = data.get("transfer") or {}
    fields_of(transfer, "transfer", label, (), ("latency", "bandwidth"))
    cores = (
        None if data.get("cores") is None else integer(data["cores"], "cores", label, 1, MAX_CORES)
    )
    return {
        "model": recorded_model(data["model"]),
        "microbatch_rows": rows,
        "stages": stages,
        "costs": [_check_costs(c, f"costs[{i}]", label, rule) for i, c in enumerate(costs)],
        "transfer": {key: _transfer_value(key, value, label) for key, value in transfer.items()},
        "step_overhead": real(data.get("step_overhead", 0.0), "step_overhead", label),
        "cores": cores,
        **{
            key: real(data.get(key, 0.0), key, label, 0.0, MAX_CALL_TIME)
            for key in ("call_overhead", "send_overhead", "call_cpu")
        },
        **_loads(data, cores, label),
    }


def _transfer_value(key: str, value, label: str) -> float:
    """transfer.latency in seconds; transfer.bandwidth in bytes/s, a rate some link could
    have (0 used to be read as an unlimited link: leave the key out for that)."""
    if key == "latency":
        return real(value, "transfer.latency", label, 0.0, MAX_CALL_TIME)
    return real(value, "transfer.bandwidth", label, MIN_RATE, MAX_RATE)


def _loads(data: dict, cores: int | None, label: str) -> dict[str, float]:
    """background_load (the runtime's idle CPU) and outside_load (other processes'), cores kept
    busy all along, together fewer than the profile's cores: a load of every core leaves the
    run nothing (``sharing`` would predict years for a step of milliseconds)."""
    high = float(cores if cores is not None else MAX_CORES)
    loads = {key: real(data.get(key, 0.0), key, label, 0.0, high) for key in _LOADS}
    if sum(loads.values()) >= high:
        key = "background_load" if loads["background_load"] >= high else "outside_load"
        together = "" if loads[key] >= high else " with background_load"
        raise PebbleError(
            f"{label}: {key} is {show(data.get(key))}{together}; the loads must stay in "
            f"0..{high:g} cores, below the {high:g} the profile's run shared."
        )
    return loads


_LOADS = ("background_load", "outside_load")


def _layer_count(model, label: str) -> int:
    if not isinstance(model, str):
        raise PebbleError(f"{label}: model must be a model spec string, got {show(model)}.")
    try:
        return len(parse_model(model).layers())
    except PebbleError as exc:
        reason = str(exc).rstrip(".")
        reason = reason if len(reason) <= 120 else reason[:117] + "..."
        raise PebbleError(f"{label}: model {show(model)} cannot be read ({reason}).") from None


def _check_stages(value, layers: int, label: str) -> list[list[int]]:
    stages = plain_list(value, "stages", label, MAX_STAGES, "MAX_STAGES")
    if not stages:
        raise PebbleError(f"{label}: stages is empty; a profile covers at least one stage.")
    out, expected = [], 0
    for i, pair in enumerate(stages):
        name = f"stages[{i}]"
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise PebbleError(
                f"{label}: {name} must be [first_layer, last_layer], got {show(pair)}."
            )
        first = integer(pair[0], f"{name}[0]", label, 0, layers - 1)
        last = integer(pair[1], f"{name}[1]", label, 0, layers - 1)
        if first != expected or last < first:
            raise PebbleError(
                f"{label}: {name} is {show(list(pair))}; stages are [first, last] layer "
                f"ranges that tile the model's {layers} layers in order; this one should "
                f"start at layer {expected}."
            )
        out.append([first, last])
        expected = last + 1
    if expected != layers:
        raise PebbleError(
            f"{label}: stages end at layer {expected - 1}, but the model has {layers} layers."
        )
    return out


def _check_costs(value, name: str, label: str, rule: DependencyRule) -> dict[str, float | None]:
    """One stage's seconds per kind of ``rule`` (null: not measured), covering every work part
    (``kind_costs.uncovered``: F, and I and W, or B)."""
    fields_of(value, name, label, (), tuple(rule.kinds))
    costs = {
        kind: None if value.get(kind) is None else real(value[kind], f"{name}.{kind}", label)
        for kind in rule.kinds
    }
    fault = uncovered(costs, rule)
    if fault is not None:
        needed = "; a profiled stage needs one" if fault.startswith("has no") else ""
        raise PebbleError(f"{label}: {name} {fault}{needed}.")
    return costs
