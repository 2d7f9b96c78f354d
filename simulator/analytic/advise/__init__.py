"""``pebblesim advise``'s search, without printing: which pipeline, tensor and data degrees,
schedule, microbatching, recompute and offload policy train a model fastest within a GPU's memory.

``space`` defines the configurations and ``enumeration`` walks them, ``time_bounds`` and
``memory_bounds`` give each closed-form lower bounds on step time and memory (from
``stage_tables``), ``search`` simulates only those that could be in the top k (branch and bound),
and ``evaluate`` plans and predicts one configuration as ``simulate`` would.
"""

from simulator.analytic.advise.enumeration import candidates
from simulator.analytic.advise.evaluate import (
    RunText,
    candidate_plan,
    chunks_flag,
    evaluator,
    run_candidate,
)
from simulator.analytic.advise.families import family_traits
from simulator.analytic.advise.memory_bounds import memory_bound
from simulator.analytic.advise.search import Outcome, SearchResult, search
from simulator.analytic.advise.space import (
    AUTO,
    OFFLOAD_POLICIES,
    RECOMPUTE_POLICIES,
    Candidate,
    Request,
)
from simulator.analytic.advise.stage_tables import stage_table
from simulator.analytic.advise.time_bounds import time_bound

__all__ = [
    "AUTO",
    "OFFLOAD_POLICIES",
    "RECOMPUTE_POLICIES",
    "Candidate",
    "Outcome",
    "Request",
    "RunText",
    "SearchResult",
    "candidate_plan",
    "candidates",
    "chunks_flag",
    "evaluator",
    "family_traits",
    "memory_bound",
    "run_candidate",
    "search",
    "stage_table",
    "time_bound",
]
