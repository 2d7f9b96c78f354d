"""What a host-link copy costs, and the offload clock put in the analytic executor's hands.

Why its own module: the bandwidth comes from the hardware preset (``HardwarePreset``'s host
link, shared by ``gpus_per_host_link`` GPUs), the bytes from the model's footprints
(``simulator.model.offload``), and the executor only needs one callable and its rows.

The contention model: the GPUs of a node that share one host link each get ``1/k`` of it
(``k = gpus_per_host_link``, or fewer when the run has fewer GPUs) for the whole run. Every rank
of a pipeline offloads after each forward and prefetches before each backward, so the sharers'
copies overlap most of the time; a fixed fair share is the simple bound on that, not an exact
replay of each overlap. The copy streams of one rank (one each way) do not slow each other:
PCIe and NVLink-C2C are full duplex.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.analytic.hardware import HardwarePreset
from simulator.analytic.offload_clock import OffloadClock
from simulator.errors import PebbleError
from simulator.model.offload import OffloadPlan, stage_offload_bytes

DEFAULT_HOST_BANDWIDTH = 25e9  # bytes/s each way: PCIe Gen4 x16 achieved, when no preset says


@dataclass(frozen=True)
class HostLink:
    """One rank's share of its host link: bytes per time unit, each way."""

    bandwidth: float

    def __post_init__(self) -> None:
        if not self.bandwidth > 0 or self.bandwidth == float("inf"):
            raise PebbleError(f"a host link's bandwidth must be positive, got {self.bandwidth}.")


def host_link(preset: HardwarePreset | None, devices: int, time_unit: str = "s") -> HostLink:
    """A rank's share of the host link: the preset's bandwidth over the GPUs sharing it (at
    most ``devices``, the run's GPUs); without a preset, PCIe Gen4's 25 GB/s alone. Unit
    costs have no seconds to put bytes in: one sentence."""
    if time_unit != "s":
        raise PebbleError(
            "--offload prices copies in seconds; give --hardware (e.g. a100-80gb) or a "
            "--profile, not unit costs."
        )
    if preset is None:
        return HostLink(DEFAULT_HOST_BANDWIDTH)
    sharers = preset.gpus_per_host_link
    if sharers != int(sharers) or sharers < 1:
        raise PebbleError(f"hardware gpus_per_host_link must be a whole number, got {sharers}.")
    return HostLink(preset.host_link_bandwidth / max(1, min(int(sharers), devices)))


@dataclass(frozen=True)
class OffloadRun:
    """An offload plan on a host link: what each stage sends, and at what share of the link
    (None: PCIe Gen4's 25 GB/s, unshared)."""

    plan: OffloadPlan
    link: HostLink | None = None


def offload_clock(run, spec, partition, rows: int, recompute, offload: OffloadRun | None, costs):
    """The executor's clock for ``offload`` (None when nothing goes out); ``recompute``: the
    run's recompute plan or None."""
    if offload is None or not offload.plan.active:
        return None
    if offload.plan.pending is not None:
        raise PebbleError(
            f"--offload {offload.plan.policy} is solved against the run's timing; predict it "
            "with simulate_plan."
        )
    link = offload.link if offload.link is not None else host_link(None, 1, costs.time_unit)
    stages = recompute.stages if recompute is not None else None
    sent = stage_offload_bytes(spec, partition, rows, run.rule, offload.plan, stages)
    if not any(sent):
        return None
    chosen = [stage.microbatches for stage in offload.plan.stages]
    return OffloadClock(run, sent, link.bandwidth, chosen)
