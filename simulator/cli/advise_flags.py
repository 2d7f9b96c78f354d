"""``pebblesim advise``'s flags: what to search, and the layout degrees it may fix.

Why apart from the command: the parser imports this before anything heavy loads (the signal
guard goes up first), so it holds the flags alone; ``simulator.cli.advise`` runs the search.
"""

from __future__ import annotations

from simulator.cli import numbers
from simulator.cli.layout_flags import add_layout_args

DEFAULT_TOP = 10


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
        "--precision",
        metavar="RECIPE",
        help="precision recipe of weights, gradients and optimizer state (bf16, bf16-grads, "
        "fp8, fp32, fp64; default: the model's); each printed simulate line keeps it",
    )
    advise.add_argument(
        "--memory-limit", help="bytes per GPU (default: the device's); the headroom comes off it"
    )
    advise.add_argument(
        "--headroom",
        metavar="BYTES|N%",
        help="memory kept free on every GPU for the CUDA context and allocator fragmentation, "
        "bytes (4GiB, 0) or a share of the device (default 5%%)",
    )
    advise.add_argument(
        "--explain",
        metavar="LAYOUT",
        help='why a layout (e.g. "p4 v2 t4 sp d4"; degrees left out match any) was dropped or '
        "where it ranks",
    )
    advise.add_argument("--schedules", help="comma-separated families (default: all)")
    advise.add_argument(
        "--recompute",
        help="whole-model recompute policies to search, comma-separated (none, selective, full, "
        "every:K, sqrt; default: none,selective,full)",
    )
    advise.add_argument(
        "--offload",
        metavar="P1,P2,...",
        help="whole-model activation offload policies to search, comma-separated (none, full, "
        "selective); default: none, and none,full,selective when nothing fits without offload",
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
        help="keep the whole optimizer state on every replica (default: ZeRO-1 when dp > 1); "
        "the same as --zero 0",
    )
    advise.add_argument(
        "--zero-stages",
        metavar="1,2,3",
        help="sharding stages to search over the data x context ranks, comma-separated (1: "
        "optimizer state, 2: plus gradients, 3: plus parameters, FSDP; default: --zero's, or 1)",
    )
    _add_where(advise)
    add_layout_args(advise, search=True)
    advise.add_argument(
        "--top", type=numbers.count(1000, ""), default=DEFAULT_TOP, help="rows to print"
    )
    advise.add_argument("--json", action="store_true", help="print one JSON object")
    advise.add_argument("--out", help="write pareto.png/.svg and advise.json here")


def _add_where(advise) -> None:
    """Where the simulations run: a Ray cluster, or this machine's cores."""
    advise.add_argument(
        "--address",
        metavar="ADDR",
        help="run the simulations as Ray tasks on the cluster at ADDR (host:port, "
        "ray://host:port or auto), one CPU each; the answer is the local search's",
    )
    advise.add_argument(
        "--jobs",
        type=numbers.count(numbers.MAX_WORKERS, "MAX_WORKERS"),
        help="worker processes on this machine that bound and simulate the configurations "
        "(default: the cores this process may use, a container's CPU quota included, at most "
        "8; 1: all in this process); the answer is the same. Not with --address",
    )
