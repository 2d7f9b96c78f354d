"""The dependency rule compiled for the search's flat lists: per kind code, where its input comes
from and where its output goes.

Why compiled and not written out: the search's engines (``execute``, ``greedy``, ``timing``)
index flat lists of action ends in their inner loops, and used to spell "F(s) waits for
F(s-1), an I or B for the I or B of s+1" as their own arithmetic. Here that arithmetic is read
once from ``schedules.dependencies`` into small per-kind tuples, and per (kind, stage) tables
that the loops index, so they stay as fast as before and agree with the validator and both
executors by construction.

Ends live in one flat list per problem: the ends of the actions whose output is one flow (the
activation, then the gradient), ``(table * S + stage) * m + microbatch``. Each kind waits for
the need that comes from another stage while that stage exists; where it falls off the
pipeline's end, for a same-stage need (the last stage's backward starts from its own
forward's loss) or for nothing (stage 0's forward reads the data). A same-stage producer runs
earlier on the same rank, and a producer on the next stage depends on it through the
pipeline's round trip, so the one need waited for is the one that arrives last.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedules.auto.problem import KIND_NAMES
from schedules.dependencies import PIPELINE_RULE, DependencyRule, Flow

TABLES = (Flow.ACTIVATION, Flow.GRADIENT)  # the end tables, by the flow their actions send


@dataclass(frozen=True)
class KindLinks:
    """Per kind code (``problem.F, I, W, B``): ``out`` the end table its output fills (-1:
    nothing leaves) and ``step`` which way it goes (+1 down, -1 up); ``cross`` the stage
    offset of its need from another stage (0: none) and ``cross_table`` that producer's end
    table; ``local_table`` the end table of its same-stage need (-1: none)."""

    out: tuple[int, ...]
    step: tuple[int, ...]
    cross: tuple[int, ...]
    cross_table: tuple[int, ...]
    local_table: tuple[int, ...]

    def sources(self, tables) -> list[list[tuple[int, float]]]:
        """``[kind][stage]``: (flat index of the end it waits for, less the microbatch; -1
        for none) and the transfer the link adds."""
        S, m = tables.S, tables.m
        found = []
        for k in range(len(self.out)):
            row = []
            for s in range(S):
                q = s + self.cross[k]
                if self.cross[k] and 0 <= q < S:
                    row.append(((self.cross_table[k] * S + q) * m, tables.link[min(s, q)]))
                elif self.local_table[k] >= 0:
                    row.append(((self.local_table[k] * S + s) * m, 0.0))
                else:
                    row.append((-1, 0.0))
            found.append(row)
        return found

    def targets(self, tables) -> list[list[tuple[int, int, float]]]:
        """``[kind][stage]``: (flat index of the end it sets, less the microbatch; -1 for
        none), the rank its output wakes (-1: none) and that link's transfer."""
        S, m = tables.S, tables.m
        found = []
        for k in range(len(self.out)):
            row = []
            for s in range(S):
                if self.out[k] < 0:
                    row.append((-1, -1, 0.0))
                    continue
                d = s + self.step[k]
                wake = (tables.rank[d], tables.link[min(s, d)]) if 0 <= d < S else (-1, 0.0)
                row.append(((self.out[k] * S + s) * m, *wake))
            found.append(row)
        return found


def compile_links(rule: DependencyRule = PIPELINE_RULE) -> KindLinks:
    """The rule's needs and outputs for the kinds the search knows, by kind code."""
    out, step, cross, cross_table, local_table = [], [], [], [], []
    for name in KIND_NAMES:
        kind = rule.rule(name)
        flow = kind.output
        out.append(TABLES.index(flow) if flow is not None else -1)
        step.append(flow.stage_step if flow is not None else 0)
        remote = [n for n in kind.needs if n.stage_offset]
        local = [n for n in kind.needs if not n.stage_offset]
        if len(remote) > 1 or len(local) > 1:
            raise ValueError(f"the search waits for one need of {name} per side, not more")
        cross.append(remote[0].stage_offset if remote else 0)
        cross_table.append(_table(rule, remote[0]) if remote else -1)
        local_table.append(_table(rule, local[0]) if local else -1)
    return KindLinks(tuple(out), tuple(step), tuple(cross), tuple(cross_table), tuple(local_table))


def _table(rule: DependencyRule, need) -> int:
    """The end table a need reads: the one its producers' output fills."""
    flows = {rule.rule(k).output for k in need.kinds if k in rule.kinds}
    if len(flows) != 1 or None in flows:
        raise ValueError(f"the search cannot wait for {need.kinds}: their outputs differ")
    return TABLES.index(flows.pop())


LINKS = compile_links()
