"""``pebblesim advise``'s search, without printing: which pipeline, tensor and data degrees,
schedule, microbatching and recompute policy train a model fastest within a GPU's memory.

``space`` enumerates the configurations, ``bounds`` gives each closed-form lower bounds on step
time and memory, ``search`` simulates only those that could be in the top k (branch and bound).
"""

from simulator.analytic.advise.bounds import memory_bound, stage_table, time_bound
from simulator.analytic.advise.search import Outcome, SearchResult, search
from simulator.analytic.advise.space import (
    AUTO,
    RECOMPUTE_POLICIES,
    Candidate,
    Request,
    candidates,
    family_traits,
)

__all__ = [
    "AUTO",
    "RECOMPUTE_POLICIES",
    "Candidate",
    "Outcome",
    "Request",
    "SearchResult",
    "candidates",
    "family_traits",
    "memory_bound",
    "search",
    "stage_table",
    "time_bound",
]
