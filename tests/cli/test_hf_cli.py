"""``--model hf:PATH/config.json`` on the command line: a Hugging Face config simulates as the
preset it equals, and a bad file is one sentence with a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_commands import one_sentence_error, run_cli

CONFIGS = Path(__file__).resolve().parents[1] / "simulator" / "hf_configs"
RUN = ("simulate", "--schedule", "1f1b", "--ranks", 4, "--microbatches", 8, "--hardware", "h100")


def simulate(capsys, model: str) -> dict:
    code, out, err = run_cli(capsys, *RUN, "--model", model, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_llama3_config_simulates_as_the_llama3_preset(capsys):
    from_file = simulate(capsys, f"hf:{CONFIGS / 'llama3-8b.json'},seq=2048")
    preset = simulate(capsys, "llama3-8b,seq=2048")
    assert from_file == preset
    assert from_file["makespan"] > 0


QWEN = (
    "transformer:layers=28,hidden=3584,heads=28,kv_heads=4,ffn=18944,seq=4096,vocab=152064,"
    "mlp=swiglu,norm=rmsnorm,position=rope,tied=0,bias=0,dropout=0,dtype=bfloat16,tp=2"
)


def test_qwen2_simulates_as_its_spec_with_the_overrides(capsys):
    from_file = simulate(capsys, f"hf:{CONFIGS / 'qwen2.5-7b.json'},seq=4096,tp=2")
    assert from_file == simulate(capsys, QWEN)
    assert from_file["layout"].startswith("p4 v1 t2 ")


def test_mixtral_simulates_with_its_experts(capsys):
    from_file = simulate(capsys, f"hf:{CONFIGS / 'mixtral-8x7b.json'},seq=4096")
    spec = (
        "transformer:layers=32,hidden=4096,heads=32,kv_heads=8,ffn=14336,seq=4096,vocab=32000,"
        "mlp=swiglu,norm=rmsnorm,position=rope,tied=0,bias=0,dropout=0,dtype=bfloat16,"
        "experts=8,top_k=2,norm_topk=1,moe_aux_coef=0.02"
    )
    assert from_file == simulate(capsys, spec)
    dense = simulate(capsys, "transformer:" + spec.split(":", 1)[1].split(",experts")[0])
    assert from_file["makespan"] > dense["makespan"]  # two experts a token, not one MLP


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("absent.json", "no such file"),
    ],
)
def test_a_bad_config_is_one_sentence_and_a_non_zero_exit(capsys, name, said):
    code, out, err = run_cli(capsys, *RUN, "--model", f"hf:{CONFIGS / name}")
    assert code != 0 and out == ""
    one_sentence_error(err)
    assert said in err and name in err


def test_a_config_that_is_not_json_is_one_sentence(capsys, tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",')
    code, _, err = run_cli(capsys, *RUN, "--model", f"hf:{path}")
    assert code != 0
    one_sentence_error(err)
    assert "is not JSON" in err and str(path) in err
