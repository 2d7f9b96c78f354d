"""A dry run and a cost model as flat arrays: what the analytic executor's timing loop reads.

Why arrays: everything about an action that does not depend on *when* it runs (its rank, its
duration, which producers it waits for and what a transfer from each adds, which cache changes
it makes) is computed once, with numpy, so the per-action loop does only the max-plus
arithmetic and a step of half a million actions takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np

from schedules.validate import DryRun
from simulator.analytic.costs import CostModel
from simulator.analytic.ranges import check_change_bytes
from simulator.model.memory_plan import StageShapes


class PlanArrays:
    """Per action of the dry run (in its order): rank, stage, kind, microbatch, duration; per
    need slot: producer and transfer time; per cache change: its action, layer, bytes and the
    fraction of the action's duration at which it happens."""

    def __init__(self, run: DryRun, costs: CostModel, shapes: StageShapes):
        schedule, rule = run.schedule, run.rule
        num_stages = schedule.num_stages
        kinds = list(rule.kinds)
        kind_code = {kind: code for code, kind in enumerate(kinds)}
        self.kind_names = np.array(kinds)
        self.rank, self.stage, self.microbatch = run.ranks, run.stages, run.microbatches
        self.kind = np.zeros(len(run), dtype=np.int64)
        for kind, code in kind_code.items():
            self.kind[run.kinds == kind] = code
        priced: dict = {}  # stages with equal costs share a row: most stages, at scale
        cost_table = np.array(
            [
                priced.get(c) or priced.setdefault(c, [c.of(kind) for kind in kinds])
                for c in costs.stage_costs
            ]
        ).reshape(num_stages, len(kinds))
        self.duration = cost_table[self.stage, self.kind]
        self._needs(run, costs, kinds)
        self._memory(shapes, kinds)

    def _needs(self, run: DryRun, costs: CostModel, kinds: list[str]) -> None:
        """Producer order index per need slot (-1: none), and the transfer time each adds."""
        num_stages = run.schedule.num_stages
        producers = run.producers
        send = np.array([costs.transfer_time(s) for s in range(num_stages)] + [0.0])
        boundary = list(costs.boundary_bytes or (0,) * num_stages) + [0]
        check_change_bytes(boundary, "one transfer between stages")
        self.boundary = np.array(boundary, dtype=np.int64)
        self.producers, self.transfer, self.link, self.flow = [], [], [], []
        for slot in range(producers.shape[1]):
            flow_name = []
            offset = []
            for kind in kinds:
                needs = run.rule.needs(kind)
                need = needs[slot] if slot < len(needs) else None
                flow_name.append(need.flow.value if need and need.flow else "")
                offset.append(need.stage_offset if need else 0)
            producer = producers[:, slot]
            flows = np.array(flow_name)[self.kind]
            crossing = (
                (producer >= 0) & (flows != "") & (self.rank[np.maximum(producer, 0)] != self.rank)
            )
            offsets = np.array(offset, dtype=np.int64)[self.kind]
            # the boundary crossed: stage s's link to s+1 is link s
            link = np.where(offsets > 0, self.stage, self.stage + offsets)
            link = np.where(crossing, link, num_stages)  # the free sentinel link
            self.producers.append(producer)
            self.transfer.append(send[link])
            self.link.append(link)
            self.flow.append(np.where(crossing, flows, ""))

    def sends(self, run: DryRun) -> np.ndarray:
        """Per action: does its output go to a stage on another rank?"""
        schedule, rule = run.schedule, run.rule
        kinds = [str(kind) for kind in self.kind_names]
        to_rank = schedule.stage_to_rank
        receiver_rank = np.full((schedule.num_stages, len(kinds)), -1, dtype=np.int64)
        for stage in range(schedule.num_stages):
            for code, kind in enumerate(kinds):
                receiver = rule.receiver(kind, stage, schedule.num_stages)
                receiver_rank[stage, code] = -1 if receiver is None else to_rank[receiver]
        target = receiver_rank[self.stage, self.kind]
        return (target >= 0) & (target != self.rank)

    def call_starts(self, run: DryRun, sends: np.ndarray | None = None) -> np.ndarray:
        """Per action: does it start a new call on its rank? It does when its input comes from
        another rank, when it is its rank's first action, or when its rank's previous action
        sent its output to another rank: how the Ray executor fuses a rank's actions into calls
        (``ray_pipeline.wiring.segments``, which also splits after a data-parallel gradient
        hand-off, ignored here). ``sends``: ``self.sends(run)``, if already known."""
        sends = self.sends(run) if sends is None else sends
        remote = np.zeros(len(self.rank), dtype=bool)
        for flow in self.flow:
            remote |= flow != ""
        order = np.argsort(self.rank, kind="stable")  # each rank's actions, in its order
        after_send = np.ones(len(order), dtype=bool)
        same_rank = self.rank[order][1:] == self.rank[order][:-1]
        after_send[order[1:]] = ~same_rank | sends[order[:-1]]
        return remote | after_send

    def _memory(self, shapes: StageShapes, kinds: list[str]) -> None:
        """Cache changes and weight-gradient completions, flattened per action."""
        shape_key = np.asarray(shapes.shape_of_stage)[self.stage] * len(kinds) + self.kind
        first_layer = np.asarray(shapes.first_layer, dtype=np.int64)[self.stage]
        for name, field in (("cache", "changes"), ("grads", "weight_grads")):
            counts, layer, delta, fraction = [], [], [], []
            for plans in shapes.plans:
                for kind in kinds:
                    entries = getattr(plans[kind], field)
                    counts.append(len(entries))
                    for entry in entries:
                        layer.append(entry[0])
                        delta.append(entry[1] if field == "changes" else 0)
                        fraction.append(entry[-1])
            check_change_bytes(delta)  # Python ints, before an int64 array could wrap
            counts = np.array(counts, dtype=np.int64)
            starts = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
            per_action = counts[shape_key]
            action = np.repeat(np.arange(len(shape_key)), per_action)
            within = np.arange(len(action)) - np.repeat(
                np.cumsum(per_action) - per_action, per_action
            )
            flat = starts[shape_key][action] + within
            layers = np.array(layer, dtype=np.int64)[flat] if len(layer) else flat
            setattr(self, f"{name}_action", action)
            setattr(self, f"{name}_layer", layers + first_layer[action])
            setattr(
                self, f"{name}_bytes", np.array(delta, dtype=np.int64)[flat] if len(delta) else flat
            )
            setattr(
                self,
                f"{name}_fraction",
                np.array(fraction, dtype=float)[flat] if len(fraction) else flat.astype(float),
            )
