"""``advise --address``: the search's simulations as Ray tasks on a cluster.

Why here: the search (``simulator.analytic.advise.search``) knows nothing of Ray; it takes a
``Batch`` that runs several configurations at once and reads their results in its own order, so
the answer is the one the local search gives. Each task asks for one CPU and runs with BLAS
pinned to one thread (``worker.BLAS_ENV``), as the pipeline's rank actors do, so a node runs as
many simulations as it has cores without oversubscribing them.
"""

from __future__ import annotations

from simulator.analytic.advise.evaluate import RunText, evaluator
from simulator.analytic.advise.search import Batch, Outcome
from simulator.analytic.advise.space import Candidate
from simulator.errors import PebbleError
from simulator.ray_pipeline.worker import BLAS_ENV


def _simulate(candidates: list[Candidate], text: RunText, limit: int | None):
    """One task's work: each candidate's Outcome, or the sentence of the PebbleError it raised
    (a string travels back whole where an exception's pickling might not)."""
    evaluate = evaluator(text, limit)
    out: list[Outcome | str] = []
    for c in candidates:
        try:
            out.append(evaluate(c))
        except PebbleError as exc:
            out.append(str(exc))
    return out


def ray_batch(text: RunText, limit: int | None, width: int | None = None) -> Batch:
    """A ``Batch`` that runs each candidate as one Ray task (``num_cpus=1``) on the cluster this
    process has joined; ``width`` (default: the cluster's CPUs) candidates at a time."""
    import ray

    if width is None:
        width = max(1, int(ray.cluster_resources().get("CPU", 1)))
    task = ray.remote(num_cpus=1)(_simulate).options(runtime_env={"env_vars": BLAS_ENV})

    def run(candidates: list[Candidate]) -> list[Outcome | PebbleError]:
        refs = [task.remote([c], text, limit) for c in candidates]
        results = [got[0] for got in ray.get(refs)]
        return [PebbleError(r) if isinstance(r, str) else r for r in results]

    return Batch(run=run, width=width)
