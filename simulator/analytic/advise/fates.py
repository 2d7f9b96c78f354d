"""What became of each configuration ``advise`` considered, and why: the record behind its
reasons for what it dropped, ``--explain`` and the near-miss list.

Why a record per configuration rather than counts: "1,720 pruned by the memory bound" does not
tell a user whether a smaller batch, recompute or more GPUs would help. Each fate keeps the
numbers that decided it (the memory bound and the static memory under it, the time bound, the
simulated outcome), so the CLI can say which constraint bound and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.analytic.advise.space import Candidate

# verdicts, in the order the search decides them
STATIC = "static"  # static memory alone (weights, gradients, optimizer state, buffers) is over
ACTIVATIONS = "activations"  # static memory plus the activations held before a backward is over
TOO_LARGE = "too_large"  # more Timeline rows than the search simulates
TIME = "time"  # its time bound is above the k-th best step time: cannot enter the top k
REFUSED = "refused"  # the schedule could not be built (a size its family refuses, no auto plan)
OVER = "over"  # simulated, over the usable memory
FITS = "fits"  # simulated, fits
SAME = "same"  # simulated, fits, the same schedule and layout as a row already counted
UNNEEDED = "unneeded"  # an offload policy where the same configuration fits without offload
# (offload never shortens a step, so that one is at least as fast): not simulated
MEMORY_VERDICTS = (STATIC, ACTIVATIONS)


@dataclass(frozen=True)
class Fate:
    """One configuration's verdict and the numbers that decided it (bytes, seconds); ``outcome``
    is the ``search.Outcome`` when it was simulated, ``reason`` the refusal's sentence."""

    candidate: Candidate
    verdict: str
    memory_bound: int | None = None  # a lower bound on the fullest rank's bytes
    static: int | None = None  # the fullest rank's static bytes (no activations)
    time_bound: float | None = None  # a lower bound on the step time
    outcome: object | None = None
    reason: str = ""
    same_as: str = ""  # for SAME: the label of the row it duplicates

    @property
    def memory(self) -> int | None:
        """The simulated peak when there is one, else the bound."""
        if self.outcome is not None:
            return self.outcome.peak_memory
        return self.memory_bound

    @property
    def time(self) -> float | None:
        """The simulated step time when there is one, else the bound."""
        if self.outcome is not None:
            return self.outcome.step_time
        return self.time_bound
