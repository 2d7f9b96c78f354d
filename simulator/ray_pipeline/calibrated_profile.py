"""A measured run's profile: the run's own work per action, with calibration's runtime costs.

Why apart from ``calibration``: that module measures (each stage's actions alone, what a Ray
call, a send and a hand-over cost, the cores and the background load); this one decides what a
prediction takes from those measurements and from the run's own (its CPU times, through
``Profile.from_timeline``, and its runtime meter, ``runtime_meter``). The choice has its own
evidence (below), and it is made after the run, not before step 0.
"""

from __future__ import annotations

from dataclasses import replace

from simulator.ray_pipeline.calibration import Calibration


def calibrated_profile(profile, calibration: Calibration | None, measured=None):
    """``profile`` (measured from the run's Timeline) with the calibration's cores and runtime
    costs; unchanged without a calibration. ``measured``: what the run measured of the runtime
    (``runtime_meter.RunRuntime``), which replaces the calibration's CPU per call and scales
    its call and send overheads (None: the calibration's own).
    Each action's work stays the profile's, the mean CPU time its thread ran in the run
    (``Profile.from_timeline``); only a profile without it (no ``cores``: no CPU times) takes
    the calibration's alone times instead.

    Why the run's CPU times and not the alone times timed here: both measure an action's work,
    but calibration times each action a few times in a fraction of a second before the run,
    and this VM's speed drifts by several percent over seconds. Nine demo runs predicted from
    the alone times were off by -6.3..+9.4% (standard deviation 5.0%); from the same runs' CPU
    times, -1.7..+4.2% (1.5%)."""
    if calibration is None:
        return profile
    own_work = profile.cores is not None
    call_cpu, scale, outside = calibration.call_cpu, 1.0, 0.0
    if measured is not None:
        call_cpu = measured.call_cpu
        scale = 1.0 if measured.overhead_scale is None else measured.overhead_scale
        outside = measured.outside_load or 0.0
    # what other processes took, charged as cores the run did not have; kept below the cores
    # (with the idle load) so the run is left at least a tenth of them, as it was: it ran
    outside = min(outside, max(0.0, 0.9 * calibration.cores - calibration.background_load))
    return replace(
        profile,
        costs=profile.costs if own_work else [dict(c) for c in calibration.costs],
        transfer={"latency": calibration.transfer},
        cores=calibration.cores,
        call_overhead=calibration.call_overhead * scale,
        send_overhead=calibration.send_overhead * scale,
        call_cpu=call_cpu,
        # the session's idle CPU (the raylet's and GCS's polling) goes on while the ranks
        # compute: it is netted out of the CPU per call and charged all along instead, so
        # every CPU second the session ran counts once. Left out, 21 demo runs were
        # under-predicted by 2.2% on average (-5.1..+1.5%); charged, -3.3..+3.5% (0.05 cores)
        background_load=calibration.background_load,
        outside_load=outside,
    )
