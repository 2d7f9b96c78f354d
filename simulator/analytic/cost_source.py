"""From a plan's ``CostSource`` to the cost model that times it: unit costs, FLOP costs on a
device, or a measured profile.

Why here and not in the plan: a plan only names its cost source (a value that pickles and
prints); turning it into per-stage times is the analytic layer's job, and the same for every
caller (``simulate``, ``compare``, ``advise``, the Ray executor's prediction, auto's search).
"""

from __future__ import annotations

from simulator.analytic.costs import CostModel, Hardware, flop_costs, parse_unit_costs, unit_costs
from simulator.analytic.hardware import HardwarePreset, parse_hardware_preset, sustained_flops
from simulator.analytic.profile import Profile, profile_costs
from simulator.analytic.roofline_costs import roofline_costs
from simulator.errors import PebbleError
from simulator.numbers import MAX_RATE, MAX_TIME, parse_float
from simulator.run.plan import RunPlan

_HARDWARE_KEYS = {
    "flops": "flops_per_second",
    "bandwidth": "link_bandwidth",
    "latency": "link_latency",
}


def hardware_preset(text: str | None) -> HardwarePreset | None:
    """The preset ``--hardware`` names (with its overrides), or None for key=value specs."""
    first = (text or "").split(",", 1)[0].strip()
    return parse_hardware_preset(text) if first and "=" not in first else None


def parse_hardware(text: str) -> Hardware:
    """A preset (``h100``, ``a100-80gb,efficiency=0.45``: sustained FLOP/s = peak x efficiency,
    links at the inter-node bandwidth) or ``flops=1e12,bandwidth=25e9,latency=5e-6``.

    A preset timed on the roofline (no ``efficiency=``) gets the best rate any of its kernels
    reaches, ``peak x gemm_efficiency``: no operation runs faster, so FLOP times at this rate
    are lower bounds on the roofline's (what ``advise``'s bounds need)."""
    preset = hardware_preset(text)
    if preset is not None:
        rate = (
            sustained_flops(preset)
            if preset.flop_model
            else preset.peak_flops * preset.gemm_efficiency
        )
        return Hardware(
            flops_per_second=rate,
            # on the roofline, links are timed by ``roofline_costs``; here the fastest one, so
            # bounds read from this stay below every transfer it times
            link_bandwidth=preset.internode_bandwidth
            if preset.flop_model
            else max(preset.internode_bandwidth, preset.nvlink_bandwidth),
            link_latency=Hardware().link_latency,
            tp_bandwidth=preset.nvlink_bandwidth,
            preset=None if preset.flop_model else preset,
        )
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = (s.strip() for s in part.partition("="))
        if key not in _HARDWARE_KEYS:
            raise PebbleError(f"unknown hardware key {key!r}; use flops, bandwidth, latency.")
        if _HARDWARE_KEYS[key] in values:
            raise PebbleError(f"hardware {key} is given twice; give each value once.")
        latency = key == "latency"
        values[_HARDWARE_KEYS[key]] = parse_float(
            value,
            minimum=0.0,
            maximum=MAX_TIME if latency else MAX_RATE,
            allow_minimum=latency,
            what=f"hardware {key}",
        )
    return Hardware(**values)


def cost_model(plan: RunPlan) -> CostModel:
    """The plan's cost model: unit costs (default), FLOP costs on its hardware, or its
    measured profile."""
    source = plan.costs
    if source.profile:
        return profile_costs(
            Profile.load(source.profile), plan.spec, plan.partition, plan.microbatch_rows
        )
    preset = hardware_preset(source.hardware) if source.hardware else None
    if preset is not None and not preset.flop_model:
        return roofline_costs(plan, preset)
    if source.hardware:
        return flop_costs(
            plan.spec, plan.partition, plan.microbatch_rows, parse_hardware(source.hardware)
        )
    unit = parse_unit_costs(source.units or "")
    return unit_costs(
        plan.schedule,
        plan.partition,
        unit["F"],
        unit["I"],
        unit["W"],
        comm_latency=source.comm_latency,
    )
