"""The memory policies ``advise`` tries on a configuration: the recompute policies that differ
on its split (two with the same plan are the same run, so only the first is kept), and the
activation offload policies worth trying on its pipeline (none where nothing could go out).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from simulator.analytic.advise.block_tables import local_split
from simulator.analytic.advise.space import AUTO, Request
from simulator.model import partition
from simulator.model.layout import Layout
from simulator.model.recompute import RecomputePolicy, plan_stages
from simulator.model.spec import ModelSpec
from simulator.model.transformer.spec import TransformerSpec


@lru_cache(maxsize=1024)
def distinct_policies(
    spec: TransformerSpec | ModelSpec, layer: Layout, stages: int, policies: tuple[str, ...]
) -> tuple[str, ...]:
    """``policies`` less those whose plan on this split of ``spec`` under the layer layout
    ``layer`` (``Layout.for_layers``; a model that is not a transformer is not sharded)
    equals an earlier one's (the same run): selective on a model without an attention core is
    none, sqrt is full with one block a stage."""
    if spec.is_transformer:  # the split the stage tables use (``local_split``), made once
        local, split = local_split(spec, layer, stages)
    else:
        local, split = spec, partition(spec, stages)
    infos = local.layers()
    cores = [  # stages with an attention core, the only layer selective recompute changes
        any(getattr(infos[i].cls, "RECOMPUTED_SLOTS", None) is not None for i in layers)
        for layers in split.stage_layers
    ]
    seen, out = set(), []
    for text in policies:
        resolved = plan_stages(RecomputePolicy.parse(text), local, split).stages
        plan = tuple(
            replace(s, selective=s.selective and c) for s, c in zip(resolved, cores, strict=True)
        )
        if plan not in seen:
            seen.add(plan)
            out.append(text)
    return tuple(out)


def offload_choices(request: Request, schedule: str, pp: int) -> tuple[str, ...]:
    """The offload policies tried for a schedule on ``pp`` ranks: none on one rank (each
    backward follows its forward at once, so nothing could go out) and for auto (it plans its
    schedule to the memory limit without offload); ``none`` first, the twin the others are
    measured against."""
    if pp == 1 or schedule == AUTO:
        return ("none",) if "none" in request.offload else ()
    return tuple(sorted(request.offload, key=lambda text: text != "none"))
