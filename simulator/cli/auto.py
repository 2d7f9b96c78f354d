"""``--schedule auto``'s own flags: ``--memory-limit`` and ``--layout`` (loop or v).

The search itself and the glue from a plan to its problem live in
``simulator.analytic.auto_plan``; ``simulator.cli.requests`` calls it. This module stays light
(the parser imports it before anything heavy loads).
"""

from __future__ import annotations


def add_auto_args(parser) -> None:
    """``--memory-limit`` and ``--layout``, for the commands that take ``--schedule auto``."""
    parser.add_argument(
        "--memory-limit",
        help="with --schedule auto: activation bytes per rank (80GiB, 2.5e9), Nx, N "
        "microbatches of one rank's activations (e.g. 8x; at p ranks, N = p is 1F1B's memory "
        "and N = 2p the paper's ZB-2p), or total:BYTES, each rank's whole memory (weights, "
        "gradients, optimizer state, buffers and activations; e.g. total:76GiB)",
    )
    parser.add_argument(
        "--layout",
        choices=["loop", "v"],
        help="with --schedule auto: one stage per rank, or a V (the parallel degrees are --tp, "
        "--sp, --dp and --zero)",
    )
