"""``train`` on any model ``simulate`` accepts: a bfloat16 preset trains, computing in float32
(numpy has no bfloat16) and saying so in one line; a model too big for this machine is refused
in one sentence before Ray starts."""

from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.run.limits import machine_memory
from simulator.timeline import Timeline

TINY_LLAMA = "llama3-8b,layers=2,hidden=64,heads=4,kv_heads=2,ffn=128,seq=8,vocab=96"
RUN = ("train", "--schedule", "1f1b", "--ranks", "2", "--microbatches", "2", "--steps", "2")


def test_a_bfloat16_preset_trains_in_float32_and_says_so(ray_session, capsys, tmp_path):
    code = main([*RUN, "--model", TINY_LLAMA, "--check", "--json", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.count("numpy has no bfloat16: training computes in float32") == 1
    payload = json.loads(captured.out)
    assert payload["max_grad_rel_diff"] <= 1e-5  # float32 against the float32 reference
    assert len(payload["loss"]) == 2
    measured = Timeline.load(tmp_path / "timeline.json")
    predicted = Timeline.load(tmp_path / "predicted_timeline.json")
    assert "dtype=float32" in measured.meta.model
    assert measured.peak_activation_bytes() == predicted.peak_activation_bytes()


def test_a_float32_model_trains_without_the_note(ray_session, capsys):
    code = main([*RUN, "--model", TINY_LLAMA + ",dtype=float32"])
    assert code == 0
    assert "numpy has no" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "model",
    [
        "llama3-8b,seq=8,vocab=96",
        "transformer:layers=2,hidden=1000000,heads=1000,seq=8,vocab=96",
    ],
)
def test_a_model_too_big_for_this_machine_is_refused_before_ray(capsys, model):
    import ray

    was_running = ray.is_initialized()
    code = main([*RUN, "--model", model])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("pebblesim: error: training this model needs about ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert ray.is_initialized() == was_running  # nothing was started for it
    needed = err.split("needs about ")[1].split(" on this machine")[0]
    assert needed.split()[1] in ("GiB", "TiB")
    assert machine_memory() > 0


def test_a_recipe_train_cannot_count_is_one_sentence(capsys):
    """A bfloat16 model trains in float32 and counts float32's recipe: asking train for the
    bf16 recipe would report memory the run does not hold."""
    code = main([*RUN, "--model", TINY_LLAMA, "--precision", "bf16"])
    err = capsys.readouterr().err
    assert code == 1
    assert "train computes this bfloat16 model in float32" in err and "Traceback" not in err
