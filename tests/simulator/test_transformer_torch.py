"""Optional cross-check: the numpy transformer and the same model written with PyTorch's own
functional ops (``layer_norm``, ``rms_norm``, ``scaled_dot_product_attention``, ``gelu``,
``silu``, ``cross_entropy``) give the same loss and gradients in float64, dropout off.

Skipped when torch is not installed; the project does not depend on it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from simulator.model.reference import set_loss_scale
from simulator.model.stage import Stage
from simulator.model.transformer import TransformerConfig, transformer_layers
from tests.simulator.test_gradcheck import rel_error

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOLERANCE = 1e-10
LINEAR_KINDS = {"qkv", "attn_out", "mlp_up", "mlp_down", "lm_head"}

CONFIGS = {
    "gpt": TransformerConfig(layers=2, hidden=16, heads=4, seq=8, vocab=11, dropout=0.0),
    "llama": TransformerConfig(
        layers=2,
        hidden=16,
        heads=4,
        kv_heads=2,
        seq=8,
        vocab=11,
        ffn=24,
        mlp="swiglu",
        norm="rmsnorm",
        position="rope",
        dropout=0.0,
        tied_embeddings=False,
        bias=False,
    ),
}


def rotary(x, base: float = 10000.0):
    """Hugging Face Llama's ``apply_rotary_pos_emb`` with its ``rotate_half``."""
    d, s = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = torch.outer(torch.arange(s, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()


def torch_attention(packed, config: TransformerConfig):
    b, s, _ = packed.shape
    a, kv, d = config.heads, config.num_kv_heads, config.head_dim
    q, k, v = packed.split([a * d, kv * d, kv * d], dim=-1)
    q, k, v = (t.reshape(b, s, -1, d).transpose(1, 2) for t in (q, k, v))
    if config.position == "rope":
        q, k = rotary(q), rotary(k)
    k, v = k.repeat_interleave(a // kv, dim=1), v.repeat_interleave(a // kv, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return out.transpose(1, 2).reshape(b, s, a * d)


def torch_step(kind: str, h, p: dict, config: TransformerConfig, ids, stack: list):
    if kind == "embedding":
        h = p["tokens"][ids]
        return h + p["positions"][: ids.shape[1]] if "positions" in p else h
    if kind == "fork":
        stack.append(h)
        return h
    if kind == "add":
        return stack.pop() + h
    if kind == "ln":
        return F.layer_norm(h, (config.hidden,), p["gamma"], p.get("beta"), eps=1e-5)
    if kind == "rmsnorm":
        return F.rms_norm(h, (config.hidden,), p["gamma"], eps=1e-5)
    if kind in LINEAR_KINDS:
        return h @ p["W"] + p["b"] if "b" in p else h @ p["W"]
    if kind == "attention":
        return torch_attention(h, config)
    if kind == "mlp_gelu":
        return F.gelu(h, approximate="tanh")
    if kind == "swiglu":
        gate, up = h.chunk(2, dim=-1)
        return F.silu(gate) * up
    raise AssertionError(f"no torch version of {kind}")


@pytest.mark.parametrize("attention", ["flash", "math"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_loss_and_gradients_equal_pytorch(name, attention):
    """Either attention core (the default fused one, and Korthikanti's math one)."""
    config = replace(CONFIGS[name], attention=attention)
    rng = np.random.default_rng(0)
    rows = 3
    layers = transformer_layers(config, seed=7)
    for layer in layers:  # biases and gains away from 0 and 1
        for key, param in layer.params.items():
            if key in ("b", "beta"):
                param[:] = 0.3 * rng.standard_normal(param.shape)
            elif key == "gamma":
                param[:] = rng.uniform(0.5, 1.5, param.shape)
    set_loss_scale(layers, rows)
    ids = rng.integers(0, config.vocab, (rows, config.seq))
    targets = rng.integers(0, config.vocab, (rows, config.seq))
    stage = Stage(0, layers)
    loss = stage.forward(0, ids, targets)
    stage.backward(0)

    tparams = {
        (layer.layer_index, key): torch.tensor(value, requires_grad=True)
        for layer in layers
        for key, value in layer.params.items()
    }
    h, stack, tids = None, [], torch.tensor(ids)
    for layer in layers[:-1]:
        p = {key: tparams[(layer.layer_index, key)] for key in layer.params}
        h = torch_step(layer.kind, h, p, config, tids, stack)
    tloss = F.cross_entropy(h.reshape(-1, config.vocab), torch.tensor(targets).reshape(-1))
    tloss.backward()

    assert abs(loss - tloss.item()) <= TOLERANCE * abs(tloss.item())
    for layer in layers:
        for key, grad in layer.grads.items():
            expected = tparams[(layer.layer_index, key)].grad.numpy()
            err = rel_error(grad, expected)
            assert err <= TOLERANCE, f"{name} {layer.name}.{key}: {err:.1e}"
