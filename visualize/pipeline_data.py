"""The pipeline chart's boxes, without drawing: one per compute event (rank, stage, chunk,
kind, microbatch, step, start, end), and one ``R`` box per recompute sub-span, on the lanes the
chart draws.

Why apart from the figure (``visualize.pipeline``): the tests and the overlay of predicted and
measured read exactly these boxes; the figures only place them. Everything comes from
``Timeline.events``, ``Timeline.recompute`` and ``meta.stage_to_rank`` (for the chunk).
"""

from __future__ import annotations

from typing import NamedTuple

from simulator.timeline import Timeline


class Box(NamedTuple):
    """One compute event as drawn: lane ``row``, x from ``start`` to ``end``."""

    row: int
    rank: int
    replica: int
    stage: int
    chunk: int
    kind: str
    microbatch: int
    step: int
    start: float
    end: float

    @property
    def label(self) -> str:
        return f"{self.stage}{self.kind}{self.microbatch}"


def _chunk_of(timeline: Timeline) -> dict[int, int]:
    """Stage -> its position among its rank's stages (0 for the first chunk)."""
    stage_to_rank = timeline.meta.stage_to_rank
    if not stage_to_rank:
        return {}
    seen: dict[int, int] = {}
    out = {}
    for stage, rank in enumerate(stage_to_rank):
        out[stage] = seen.get(rank, 0)
        seen[rank] = out[stage] + 1
    return out


def pipeline_boxes(timeline: Timeline, replica: int | None = 0) -> list[Box]:
    """One Box per compute event of ``replica`` (all replicas, stacked, if None), in the
    Timeline's order. Lane ``row`` is ``rank`` (plus ``replica * ranks`` for all replicas)."""
    ranks = timeline.num_ranks
    chunk_of = _chunk_of(timeline)
    boxes = []
    for e in timeline.events:
        if replica is not None and e.replica != replica:
            continue
        row = e.rank if replica is not None else e.replica * ranks + e.rank
        boxes.append(
            Box(
                row,
                e.rank,
                e.replica,
                e.stage,
                chunk_of.get(e.stage, 0),
                e.kind,
                e.microbatch,
                e.step,
                e.start,
                e.end,
            )
        )
    return boxes


def recompute_boxes(timeline: Timeline, replica: int | None = 0) -> list[Box]:
    """One Box of kind ``R`` per recompute sub-span of ``replica`` (all if None), lanes as in
    ``pipeline_boxes``: each lies inside the I or B box of its rank, stage and microbatch."""
    ranks = timeline.num_ranks
    chunk_of = _chunk_of(timeline)
    return [
        Box(
            s.rank if replica is not None else s.replica * ranks + s.rank,
            s.rank,
            s.replica,
            s.stage,
            chunk_of.get(s.stage, 0),
            "R",
            s.microbatch,
            s.step,
            s.start,
            s.end,
        )
        for s in timeline.recompute
        if replica is None or s.replica == replica
    ]


__all__ = ["Box", "pipeline_boxes", "recompute_boxes"]
