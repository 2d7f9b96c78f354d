"""The Timeline: the contract between the engines and everything that reports.

Why a package with one face: both executors write a Timeline and every summary, figure and
trace reads one, so what it holds is imported from here and nowhere else. Inside, each module
has one job:

* ``rows``: the row types (compute, transfers, cache changes, gradient-ready, ...) as numpy
  column tables;
* ``meta``: the typed ``meta`` block (the run's schedule, model split, units, rank memory);
* ``schema``: the checks a Timeline or profile file passes before anything reads it;
* ``stats``: peaks, busy time and step ends, vectorised over the rows;
* ``store``: the ``Timeline`` itself (build, summarise, save, load);
* ``trace``: the Chrome trace event export that Perfetto opens.
"""

from simulator.timeline.meta import LayerMeta, RankMemory, TimelineMeta
from simulator.timeline.rows import (
    ActionCpu,
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OptimizerStep,
    RecomputeSpan,
    RowTable,
)
from simulator.timeline.store import SCHEMA_VERSION, RankSummary, Summary, Timeline
from simulator.timeline.trace import save_chrome_trace, to_chrome_trace

__all__ = [
    "SCHEMA_VERSION",
    "ActionCpu",
    "AllReduce",
    "CacheChange",
    "CommEvent",
    "ComputeEvent",
    "GradReady",
    "LayerMeta",
    "OptimizerStep",
    "RankMemory",
    "RankSummary",
    "RecomputeSpan",
    "RowTable",
    "Summary",
    "Timeline",
    "TimelineMeta",
    "save_chrome_trace",
    "to_chrome_trace",
]
