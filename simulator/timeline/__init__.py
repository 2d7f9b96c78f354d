"""The Timeline: the contract between the engines and everything that reports.

Why a package with one face: both executors write a Timeline and every summary, figure and
trace reads one, so what it holds is imported from here and nowhere else. Inside, each module
has one job:

* ``rows``: the row types (compute, transfers, cache changes, gradient-ready, ...) as numpy
  column tables;
* ``kinds``: what each action kind means to a reader (forward or backward, its flow, its
  legend label and colour key): the dependency rule's traits, re-exported;
* ``meta``: the typed ``meta`` block (the run's schedule, model split, units, rank memory);
* ``json_values``: the guarded read of a JSON file and the typed checks of its values;
* ``schema``: the checks a Timeline file passes before anything reads it;
* ``stats``: peaks, busy time and step ends, vectorised over the rows;
* ``store``: the ``Timeline`` itself (build, summarise, save, load);
* ``trace``: the Chrome trace event export that Perfetto opens.
"""

from simulator.timeline.kinds import (
    PIPELINE_RULE,
    DependencyRule,
    Display,
    KindRule,
    backward_kinds,
    forward_kinds,
    kind_display,
    received_flows,
    weight_gradient_kinds,
)
from simulator.timeline.meta import LayerMeta, RankMemory, TimelineMeta
from simulator.timeline.rows import (
    ActionCpu,
    AllReduce,
    CacheChange,
    CommEvent,
    ComputeEvent,
    GradReady,
    OffloadSpan,
    OptimizerStep,
    RecomputeSpan,
    RowTable,
)
from simulator.timeline.store import SCHEMA_VERSION, RankSummary, Summary, Timeline
from simulator.timeline.trace import save_chrome_trace, to_chrome_trace

__all__ = [
    "PIPELINE_RULE",
    "SCHEMA_VERSION",
    "ActionCpu",
    "AllReduce",
    "CacheChange",
    "CommEvent",
    "ComputeEvent",
    "DependencyRule",
    "Display",
    "KindRule",
    "GradReady",
    "LayerMeta",
    "OffloadSpan",
    "OptimizerStep",
    "RankMemory",
    "RankSummary",
    "RecomputeSpan",
    "RowTable",
    "Summary",
    "Timeline",
    "TimelineMeta",
    "backward_kinds",
    "forward_kinds",
    "kind_display",
    "received_flows",
    "save_chrome_trace",
    "to_chrome_trace",
    "weight_gradient_kinds",
]
