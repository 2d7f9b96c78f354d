"""``pebblesim advise``: the fastest ways to train a transformer on N GPUs of one kind that fit
in their memory, ranked, each with the ``pebblesim simulate`` line that reproduces it.

The search itself is ``simulator.analytic.advise`` (no printing); this module reads the flags,
shows a progress bar on stderr (only on a terminal), prints the table and the counts, and with
``--out`` draws the Pareto figure (``visualize.advise``).
"""

from __future__ import annotations

import sys
import time

from simulator.cli import numbers
from simulator.errors import PebbleError

DEFAULT_TOP = 10
MAX_ROWS = 5_000_000  # Timeline rows per configuration: about 2 s to simulate; larger are skipped


def add_advise(sub) -> None:
    """The ``advise`` subcommand's flags (called by ``simulator.cli.parser``)."""
    advise = sub.add_parser(
        "advise", help="search parallel degrees, schedule, microbatching for the fastest fit"
    )
    advise.add_argument("--model", required=True, help="a preset (llama3-70b) or transformer:...")
    advise.add_argument(
        "--hardware", required=True, help="a GPU preset (h100-80gb; see `pebblesim presets`)"
    )
    advise.add_argument("--gpus", type=numbers.count(numbers.MAX_RANKS, "MAX_RANKS"), required=True)
    advise.add_argument(
        "--global-batch",
        type=numbers.count(numbers.MAX_BATCH_SIZE, "MAX_BATCH_SIZE"),
        required=True,
        help="sequences per optimizer step, over all data-parallel replicas",
    )
    advise.add_argument("--seq", type=numbers.count(10**7, ""), help="sequence length")
    advise.add_argument(
        "--memory-limit", help="bytes per GPU a configuration may use (default: the device's)"
    )
    advise.add_argument("--schedules", help="comma-separated families (default: all)")
    advise.add_argument(
        "--recompute",
        help="whole-model recompute policies to search, comma-separated (none, selective, full, "
        "every:K, sqrt; default: none,selective,full)",
    )
    advise.add_argument(
        "--max-chunks",
        type=numbers.count(numbers.MAX_CHUNKS, "MAX_CHUNKS"),
        default=4,
        help="most chunks per rank tried for interleaved schedules (default %(default)s)",
    )
    advise.add_argument(
        "--no-distributed-optimizer",
        action="store_true",
        help="keep the whole optimizer state on every replica (default: ZeRO-1 when dp > 1)",
    )
    advise.add_argument(
        "--top", type=numbers.count(1000, ""), default=DEFAULT_TOP, help="rows to print"
    )
    advise.add_argument("--json", action="store_true", help="print one JSON object")
    advise.add_argument("--out", help="write pareto.png/.svg and advise.json here")


def _request(args):
    """The search request and the text each printed ``simulate`` command carries."""
    from schedules.registry import SCHEDULES, canonical_name
    from simulator.analytic.advise import AUTO, RECOMPUTE_POLICIES, Request
    from simulator.cli.advise_run import RunText
    from simulator.cli.auto import is_auto
    from simulator.cli.workflows import hardware_preset, parse_hardware
    from simulator.model.parse import parse_model

    model = args.model.strip()
    if args.seq is not None:
        model = f"{model},seq={args.seq}"
    spec = parse_model(model)
    if not spec.is_transformer:
        raise PebbleError("advise searches transformers: give a preset or transformer:... model.")
    if hardware_preset(args.hardware) is None:
        raise PebbleError("advise needs a GPU preset for --hardware (see `pebblesim presets`).")
    hardware = args.hardware.strip()
    if args.memory_limit is not None:
        hardware = f"{hardware},memory={args.memory_limit.strip()}"
        try:
            hardware_preset(hardware)
        except PebbleError:
            raise PebbleError(
                f"cannot read --memory-limit {args.memory_limit!r}; write a whole number of bytes "
                "such as 72GiB, 1.5MiB or 7.5e10."
            ) from None
    preset = hardware_preset(hardware)
    names = [*SCHEDULES, AUTO] if not args.schedules else args.schedules.split(",")
    families = tuple(
        dict.fromkeys(AUTO if is_auto(n) else canonical_name(n) for n in names if n.strip())
    )
    request = Request(
        spec=spec,
        hardware=preset,
        gpus=args.gpus,
        global_batch=args.global_batch,
        memory_limit=preset.memory_bytes,
        families=families,
        recompute=_policies(args.recompute, RECOMPUTE_POLICIES),
        max_chunks=args.max_chunks,
        distributed_optimizer=not args.no_distributed_optimizer,
        max_rows=MAX_ROWS,
    )
    return request, RunText(model, hardware), parse_hardware(hardware)


def _policies(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """``--recompute none,full``: each policy checked (one sentence if not), in its plain
    spelling (``FULL`` is ``full``), once."""
    from simulator.model.recompute import RecomputePolicy
    from simulator.run.recompute import recompute_policies

    if text is None:
        return default
    policies = (RecomputePolicy.parse(p).to_text() for p in recompute_policies(text))
    return tuple(dict.fromkeys(policies))


class _Bar:
    """A tqdm bar on stderr, drawn only on a terminal: one for bounding every candidate, one for
    simulating those that survive."""

    def __init__(self) -> None:
        self.bar = None
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int, result) -> None:
        if phase != self.phase:
            from tqdm import tqdm

            self.close()
            self.phase = phase
            self.bar = tqdm(
                total=total, desc=f"advise: {phase}", unit="config", file=sys.stderr, disable=None
            )
        if result is not None:
            self.bar.set_postfix_str(f"simulated {len(result.simulated)}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_advise(args) -> int:
    from simulator.analytic.advise import search
    from simulator.cli.advise_print import format_advice, no_fit_error, payload
    from simulator.cli.advise_run import evaluator

    request, text, hardware = _request(args)
    started = time.perf_counter()
    bar = _Bar()
    try:
        result = search(request, hardware, evaluator(text), top=args.top, progress=bar)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    if not result.top:
        raise PebbleError(no_fit_error(request, result))
    data = payload(request, text, result, elapsed)
    if args.out:
        _write_outputs(args.out, request, result, data)
    if args.json:
        from simulator.cli.printing import emit_json

        emit_json(data)
    else:
        print(format_advice(request, text, result, elapsed))
        if args.out:
            print(f"\nwrote {args.out}/pareto.png, pareto.svg and advise.json")
    return 0


def _write_outputs(folder: str, request, result, data: dict) -> None:
    import visualize.advise
    from simulator.cli.advise_print import pareto_points
    from simulator.cli.numbers import strict_json
    from simulator.cli.outputs import StagedOutput

    with StagedOutput(folder) as out:
        note = (
            f"{len(result.simulated)} of {result.considered:,} configurations simulated;\n"
            "the rest were pruned by their bounds"
        )
        figure = visualize.advise.pareto_figure(
            pareto_points(result), request.memory_limit, data["title"], note
        )
        visualize.save(figure, out.path("pareto"))
        out.path("advise.json").write_text(strict_json(data) + "\n")
