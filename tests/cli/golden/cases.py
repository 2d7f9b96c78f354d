"""The golden grid: CLI runs whose output must not change when the code is reorganised.

Why: a refactor that moves every file is only safe if behaviour is pinned first. These outputs
were recorded from main before the layered tree (issue 8) and are compared by
``tests/cli/test_golden.py``. Re-record deliberately, with
``python tests/cli/golden/record.py``, only when a change of output is intended, and say so in
the commit.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
PROFILE = HERE / "profile.json"

_SIZES = {
    "naive": [(2, 4), (4, 8)],
    "gpipe": [(2, 4), (4, 8)],
    "1f1b": [(2, 4), (4, 8), (3, 5)],
    "interleaved-1f1b": [(2, 4), (4, 8)],
    "zb-h1": [(2, 4), (4, 8), (3, 5)],
    "zb-h2": [(2, 4), (4, 8)],
    "zb-v": [(2, 4), (4, 8)],
    "dualpipe-v": [(2, 4), (4, 8)],
}

_OPTIONS = {
    "unit": [],
    "costs": ["--costs", "F=1,I=2,W=0.5", "--comm-latency", "0.25"],
    "hardware": ["--hardware", "flops=1e12,bandwidth=25e9,latency=5e-6"],
    "dp-steps": ["--dp", "2", "--steps", "2", "--hardware", "flops=2e12"],
    "nosync": ["--steps", "3", "--no-sync", "--costs", "F=1,I=1,W=1"],
    "model": ["--model", "widths=8-32-32-32-32-32-32-32-32-4,layernorm=1", "--batch-size", "120"],
}


def simulate_cases() -> dict[str, list[str]]:
    """name -> argv for ``pebblesim simulate ... --json``."""
    cases = {}
    for schedule, sizes in _SIZES.items():
        for p, m in sizes:
            for option, extra in _OPTIONS.items():
                name = f"simulate-{schedule}-p{p}-m{m}-{option}"
                argv = ["simulate", "--schedule", schedule, "--ranks", str(p)]
                argv += ["--microbatches", str(m), *extra, "--json"]
                cases[name] = argv
    cases["simulate-interleaved-v3"] = [
        "simulate",
        "--schedule",
        "interleaved-1f1b",
        "--ranks",
        "3",
        "--microbatches",
        "6",
        "--chunks",
        "3",
        "--json",
    ]
    cases["simulate-profile-same-split"] = [
        "simulate",
        "--schedule",
        "1f1b",
        "--ranks",
        "2",
        "--microbatches",
        "4",
        "--profile",
        str(PROFILE),
        "--json",
    ]
    cases["simulate-profile-other-split"] = [
        "simulate",
        "--schedule",
        "zb-h1",
        "--ranks",
        "4",
        "--microbatches",
        "8",
        "--profile",
        str(PROFILE),
        "--model",
        "2-64-64-64-64-3",
        "--json",
    ]
    return cases


def timeline_cases() -> dict[str, list[str]]:
    """name -> argv for ``pebblesim simulate ... --out DIR``; the timeline.json is compared."""
    cases = {}
    for schedule in _SIZES:
        for option in ("unit", "hardware"):
            argv = ["simulate", "--schedule", schedule, "--ranks", "4", "--microbatches", "8"]
            cases[f"timeline-{schedule}-{option}"] = argv + _OPTIONS[option]
    cases["timeline-1f1b-dp"] = [
        "simulate",
        "--schedule",
        "1f1b",
        "--ranks",
        "2",
        "--microbatches",
        "4",
        *_OPTIONS["dp-steps"],
    ]
    return cases


def text_cases() -> dict[str, list[str]]:
    """name -> argv whose stdout is compared as text (compare tables, exported CSV)."""
    cases = {
        "compare-p4-m8": ["compare", "--ranks", "4", "--microbatches", "8"],
        "compare-p2-m6-costs": [
            "compare",
            "--ranks",
            "2",
            "--microbatches",
            "6",
            "--costs",
            "F=1,I=1.5,W=0.5",
        ],
        "compare-p4-m8-v4": [
            "compare",
            "--ranks",
            "4",
            "--microbatches",
            "8",
            "--chunks",
            "4",
            "--schedules",
            "1f1b,interleaved-1f1b,zb-v",
        ],
    }
    for schedule, sizes in _SIZES.items():
        p, m = sizes[-1]
        cases[f"export-{schedule}-p{p}-m{m}"] = [
            "export",
            "--schedule",
            schedule,
            "--ranks",
            str(p),
            "--microbatches",
            str(m),
        ]
    return cases
