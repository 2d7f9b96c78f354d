"""The published measured runs (``simulator.analytic.published_runs``) agree with their papers.

Every row is well formed (its layout occupies its GPUs, its batch splits into microbatches, its
model has the paper's parameter count within 3%), every other figure a paper prints for the same
run implies the same seconds per step within the figures' printed rounding, and a few values are
recomputed here by hand from the papers' formulas:

* Narayanan et al. 2021 (arXiv 2104.04473), Table 1 and equations (2) and (3);
* Korthikanti et al. 2022 (arXiv 2205.05198), Table 5 and equation (7);
* Llama Team 2024 (arXiv 2407.21783), Table 4 (16M tokens per batch);
* Jiang et al. 2024, MegaScale (arXiv 2402.15627), Table 2.

Prediction errors are not asserted here (that is the cost model's test); nothing is simulated.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from simulator.analytic.published_runs import (
    CALIBRATION_SPLIT,
    PUBLISHED_RUNS,
    Figure,
    fitted_runs,
    held_out_runs,
    run_named,
)
from simulator.errors import PebbleError
from simulator.model.transformer.presets import parameter_count

RUNS = {run.id: run for run in PUBLISHED_RUNS}
CHECKED = [run for run in PUBLISHED_RUNS if run.cross_checks]


def test_ids_are_unique_and_every_table_is_there():
    assert len(RUNS) == len(PUBLISHED_RUNS)
    tables = {(run.source.arxiv, run.source.table) for run in PUBLISHED_RUNS}
    assert ("2104.04473", "Table 1") in tables  # Narayanan, all 10 rows
    assert ("2205.05198", "Table 5") in tables  # Korthikanti, 4 sizes x 2 experiments
    assert ("2407.21783", "Table 4") in tables  # Llama 3, 3 rows incl. CP
    counts = {
        t: sum(r.source.table == t[1] and r.source.arxiv == t[0] for r in RUNS.values())
        for t in tables
    }
    assert counts[("2104.04473", "Table 1")] == 10
    assert counts[("2205.05198", "Table 5")] == 8
    assert counts[("2407.21783", "Table 4")] == 3


@pytest.mark.parametrize("run", PUBLISHED_RUNS, ids=lambda run: run.id)
def test_row_is_well_formed(run):
    layout = run.layout_value
    assert layout.devices == run.gpus
    assert run.global_batch % (layout.data * run.microbatch) == 0
    assert run.microbatches >= 1
    if run.schedule == "interleaved-1f1b":
        assert layout.chunks > 1 and run.microbatches % layout.pipeline == 0
    else:
        assert layout.chunks == 1
    assert re.fullmatch(r"\d{4}\.\d{5}", run.source.arxiv)
    assert run.source.paper and run.source.row and run.precision
    assert run.pending is None or run.pending.endswith(".")


@pytest.mark.parametrize("run", PUBLISHED_RUNS, ids=lambda run: run.id)
def test_model_has_the_papers_parameter_count_within_3_percent(run):
    assert parameter_count(run.spec().config) == pytest.approx(run.stated_parameters, rel=0.03)


@pytest.mark.parametrize("run", [r for r in PUBLISHED_RUNS if r.id.startswith("narayanan")])
def test_narayanan_models_match_equation_2(run):
    """P = 12 l h^2 (1 + 13 / 12h + (V + s) / 12 l h), which the table's sizes round."""
    c = run.spec().config
    l, h, v, s = c.layers, c.hidden, c.vocab, c.seq
    equation_2 = 12 * l * h * h * (1 + 13 / (12 * h) + (v + s) / (12 * l * h))
    assert parameter_count(c) == pytest.approx(equation_2, rel=1e-3)
    assert round(equation_2 / 1e9, 1) == pytest.approx(run.stated_parameters / 1e9, abs=0.051)


@pytest.mark.parametrize("run", CHECKED, ids=lambda run: run.id)
def test_every_figure_of_a_run_implies_the_same_step_time(run):
    """Each cross-check (percent of peak, aggregate PFLOP/s, MFU, HFU, tokens/s) gives the
    headline's seconds per step within the two figures' printed rounding."""
    seconds = run.step_seconds()
    for figure in run.cross_checks:
        bound = run.measured.relative_rounding + figure.relative_rounding
        assert run.step_seconds(figure) / seconds - 1 == pytest.approx(0, abs=bound), figure


def test_a_wrong_figure_fails_the_cross_check():
    """The check above can fail: Korthikanti's 175B at 15.75 s is not 51.4% MFU."""
    run = RUNS["korthikanti-t5-175b-selective"]
    wrong = replace(run, measured=Figure(15.75, "seconds_per_iteration", 0.005))
    mfu = wrong.cross_checks[0]
    bound = wrong.measured.relative_rounding + mfu.relative_rounding
    assert abs(wrong.step_seconds(mfu) / wrong.step_seconds() - 1) > bound


def test_korthikanti_175b_mfu_by_hand():
    """Table 5: 13.75 s a step on 64 A100s is 51.4% MFU by equation (7),
    72 B L s h^2 (1 + s / 6h + v / 12 h L), B 64, L 96, s 2048, h 12288, v 51200."""
    b, layers, s, h, v = 64, 96, 2048, 12288, 51200
    model_flops = 72 * b * layers * s * h**2 * (1 + s / (6 * h) + v / (12 * h * layers))
    assert model_flops / (13.75 * 64 * 312e12) == pytest.approx(0.514, abs=0.0005)
    run = RUNS["korthikanti-t5-175b-selective"]
    assert run.step_seconds(run.cross_checks[0]) == pytest.approx(
        model_flops / (0.514 * 64 * 312e12), rel=1e-9
    )


def test_narayanan_1t_seconds_by_hand():
    """Table 1's 1T row: F = 96 B s l h^2 (1 + s / 6h + V / 16 l h) at B 3072, s 2048, l 128,
    h 25600, V 51200, over 163 TFLOP/s on each of 3,072 GPUs: about 102.6 s a step."""
    b, s, layers, h, v = 3072, 2048, 128, 25600, 51200
    flops = 96 * b * s * layers * h**2 * (1 + s / (6 * h) + v / (16 * layers * h))
    assert RUNS["narayanan-t1-1t"].step_seconds() == pytest.approx(flops / (163e12 * 3072))
    assert flops / (163e12 * 3072) == pytest.approx(102.6, abs=0.05)


def test_narayanan_microbatches_follow_the_authors_script():
    """run_table_1.sh: 145B is t8 p8 with microbatch 2 and 5 layers per virtual stage, so on
    1,536 GPUs (24 replicas) a replica runs 2304 / 24 / 2 = 48 microbatches over v = 2."""
    run = RUNS["narayanan-t1-145.6b"]
    assert (run.layout_value.chunks, run.layout_value.data, run.microbatches) == (2, 24, 48)
    assert RUNS["narayanan-t1-1t"].schedule == "1f1b"  # the script gives it no virtual stages


def test_llama3_rows_carry_16m_tokens_and_their_gpus():
    """Table 4: every stage trains 16M (2^24) tokens a batch on TP x CP x PP x DP GPUs."""
    for run in (r for r in PUBLISHED_RUNS if r.id.startswith("llama3")):
        assert run.global_batch * run.spec().config.seq == 2**24
        assert run.layout_value.devices == run.gpus
    assert RUNS["llama3-t4-128k-16384gpu-cp16"].layout_value.context == 16


def test_megascale_throughput_is_batch_tokens_over_time():
    """Table 2, 256 GPUs: 768 x 2048 tokens in 40.0 s is the printed 39.3k tokens/s."""
    run = RUNS["megascale-t2-175b-256gpu"]
    assert 768 * 2048 / run.step_seconds() == pytest.approx(39.3e3, abs=50)


def test_every_unpublished_field_names_its_rule():
    """Llama 3 and MegaScale do not print their microbatch size: the row says so."""
    for run in PUBLISHED_RUNS:
        if run.source.arxiv in ("2407.21783", "2402.15627"):
            assert any(note.startswith("microbatch: not published") for note in run.derived)
    assert all(run.derived for run in PUBLISHED_RUNS)


def test_calibration_split_is_at_most_a_third_and_spread():
    fitted, held = fitted_runs(), held_out_runs()
    assert len(set(CALIBRATION_SPLIT)) == len(CALIBRATION_SPLIT)
    assert len(fitted) <= len(PUBLISHED_RUNS) / 3
    assert len(fitted) + len(held) == len(PUBLISHED_RUNS)
    for runs in (fitted, held):
        assert {run.gpu for run in runs} == {"a100-80gb", "h100-80gb"}
        assert len({run.source.arxiv for run in runs}) == 4
    for gpu in ("a100-80gb", "h100-80gb"):
        of_gpu = [run for run in PUBLISHED_RUNS if run.gpu == gpu]
        assert sum(run.id in CALIBRATION_SPLIT for run in of_gpu) <= len(of_gpu) / 3
    with pytest.raises(KeyError):
        run_named("no-such-run")


@pytest.mark.parametrize("run", PUBLISHED_RUNS, ids=lambda run: run.id)
def test_row_plans_as_simulate_would(run):
    if run.pending:
        pytest.skip(run.pending)
    plan = run.plan()
    assert plan.global_batch == run.global_batch
    assert plan.layout == run.layout_value
    assert plan.microbatch_rows == run.microbatch


def test_bad_rows_are_one_sentence():
    run = RUNS["korthikanti-t5-22b-full"]
    with pytest.raises(PebbleError, match="unknown hardware preset"):
        replace(run, gpu="a100")
    with pytest.raises(PebbleError, match="unknown published figure kind"):
        Figure(1.0, "tflops", 0.5)
