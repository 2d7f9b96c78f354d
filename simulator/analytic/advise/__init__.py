"""``pebblesim advise``'s search, without printing: which pipeline, tensor and data degrees,
schedule, microbatching, recompute and offload policy train a model fastest within a GPU's memory.

``space`` enumerates the configurations, ``bounds`` gives each closed-form lower bounds on step
time and memory, ``search`` simulates only those that could be in the top k (branch and bound),
and ``evaluate`` plans and predicts one configuration as ``simulate`` would.
"""

from simulator.analytic.advise.bounds import memory_bound, stage_table, time_bound
from simulator.analytic.advise.evaluate import (
    RunText,
    candidate_plan,
    chunks_flag,
    evaluator,
    run_candidate,
)
from simulator.analytic.advise.search import Outcome, SearchResult, search
from simulator.analytic.advise.space import (
    AUTO,
    OFFLOAD_POLICIES,
    RECOMPUTE_POLICIES,
    Candidate,
    Request,
    candidates,
    family_traits,
)

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
