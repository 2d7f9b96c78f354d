"""Flash attention is the default; ``--recompute selective`` says on stderr, once, that it changes
nothing when every attention core of the run is fused (simulate, compare and train), and keeps
its meaning, silently, for ``attention=math``."""

from __future__ import annotations

import json

import pytest

import simulator.cli.commands as commands
from simulator.cli.commands import FLASH_SELECTIVE_NOTE
from simulator.errors import PebbleError
from tests.cli.test_commands import run_cli

GPT = "transformer:layers=4,hidden=32,heads=4,seq=16,vocab=96"
MATH = GPT + ",attention=math"
SIZES = ("--ranks", 2, "--microbatches", 4)
NOTE = (
    "note: --recompute selective changes nothing with attention=flash: a fused attention keeps "
    "no s x s scores to drop."
)


def test_the_note_is_the_sentence_asked_for():
    assert FLASH_SELECTIVE_NOTE == NOTE


def simulate(capsys, model: str, policy: str | None) -> tuple[dict, str]:
    recompute = ("--recompute", policy) if policy else ()
    code, out, err = run_cli(
        capsys, "simulate", "--schedule", "1f1b", *SIZES, "--model", model, *recompute, "--json"
    )
    assert code == 0, err
    return json.loads(out), err


@pytest.mark.parametrize(
    ("model", "policy", "noted"),
    [
        (GPT, "selective", True),
        ("gpt3-1.3b", "selective", True),
        (GPT, "0:selective,1:full", True),
        (MATH, "selective", False),
        (GPT, "full", False),
        (GPT, None, False),
        ("2-16-16-3", "selective", False),  # an MLP has no attention core at all
    ],
)
def test_simulate_notes_selective_under_flash(capsys, model, policy, noted):
    _, err = simulate(capsys, model, policy)
    assert err.splitlines().count(NOTE) == int(noted), err
    assert err.strip() in ("", NOTE)


def test_selective_keeps_its_meaning_for_math_and_changes_nothing_for_flash(capsys):
    def peaks(summary: dict) -> list[int]:
        return [r["peak_activation_bytes"] for r in summary["per_rank"]]

    flash = {p: simulate(capsys, GPT, p)[0] for p in ("none", "selective")}
    math = {p: simulate(capsys, MATH, p)[0] for p in ("none", "selective")}
    assert peaks(flash["selective"]) == peaks(flash["none"])
    assert flash["selective"]["makespan"] == flash["none"]["makespan"]
    assert all(s < n for s, n in zip(peaks(math["selective"]), peaks(math["none"]), strict=True))
    assert peaks(flash["none"]) < peaks(math["none"])  # no s x s scores kept at all


@pytest.mark.parametrize(("model", "noted"), [(GPT, True), (MATH, False)])
def test_compare_notes_once(capsys, model, noted):
    code, out, err = run_cli(
        capsys, "compare", *SIZES, "--schedules", "1f1b", "--model", model,
        "--recompute", "none,selective,full",
    )  # fmt: skip
    assert code == 0, err
    assert "1f1b [selective]" in out
    assert err.splitlines().count(NOTE) == int(noted), err


@pytest.mark.parametrize(("model", "noted"), [(GPT, True), (MATH, False)])
def test_train_notes_before_it_starts(capsys, monkeypatch, model, noted):
    """The note comes once the plan is built, before Ray starts (stopped here)."""

    def stop(*args, **kwargs):
        raise PebbleError("stopped before Ray.")

    monkeypatch.setattr(commands, "train_on_ray", stop)
    code, _, err = run_cli(
        capsys, "train", "--schedule", "1f1b", "--ranks", 2, "--microbatches", 2,
        "--model", model, "--recompute", "selective",
    )  # fmt: skip
    assert code == 1 and "stopped before Ray" in err
    assert err.splitlines().count(NOTE) == int(noted), err
