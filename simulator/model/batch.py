"""The one batch-divisibility check: a batch must split into equal microbatches per replica.

Why one place: the CLI's run planning, the Ray executor and the sequential reference all split
batches; a mistake must read the same wherever it is caught.
"""

from __future__ import annotations

from simulator.errors import PebbleError


def microbatch_rows(batch_size: int, microbatches: int, dp: int = 1) -> int:
    """Rows per microbatch when ``batch_size`` rows split over ``dp`` replicas x
    ``microbatches``; one sentence if they do not split evenly."""
    if microbatches <= 0:
        raise PebbleError(f"microbatches must be a positive integer, got {microbatches}.")
    if batch_size <= 0 or batch_size % (microbatches * dp):
        replicas = f" for each of {dp} replicas" if dp > 1 else ""
        raise PebbleError(
            f"a batch of {batch_size} rows does not split into {microbatches} equal "
            f"microbatches{replicas}."
        )
    return batch_size // (microbatches * dp)
