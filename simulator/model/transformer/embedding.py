"""The two ends of the model: token + position embedding, and token-level cross-entropy."""

from __future__ import annotations

import numpy as np

from simulator.model.layers import Loss, ParametricLayer
from simulator.model.transformer.base import Rules, parametric_footprint, stateless_footprint
from simulator.model.transformer.config import TransformerConfig
from simulator.model.transformer.dims import ID_BYTES, Dims


class Embedding(Rules, ParametricLayer):
    """Integer token ids (b, s) -> ``tokens[ids] + positions[:s]``, shape (b, s, h).

    Why it is a ParametricLayer although its input is not a float: its weight gradient needs the
    ids (to know which rows of the table to update) and the output gradient, exactly the
    "input, then output gradient until W" protocol. The ids are cached as int64 (8 bytes each).
    There is no input gradient (ids are not differentiable): ``backward_input`` returns None.

    The weight gradient is a scatter-add: ``d tokens[i] += dy`` for every position holding id
    ``i`` (``np.add.at`` adds repeated ids, which a fancy-index ``+=`` would not); the positions'
    gradient is ``dy`` summed over the sequences of the microbatch.
    """

    kind = "embedding"

    def __init__(self, layer_index, vocab, hidden, seq, dtype, rng=None, learned_positions=True):
        super().__init__(layer_index, 1, hidden, dtype)
        rng = rng if rng is not None else np.random.default_rng(layer_index)
        self.params["tokens"] = rng.standard_normal((vocab, hidden)).astype(self.dtype)
        if learned_positions:
            self.params["positions"] = rng.standard_normal((seq, hidden)).astype(self.dtype)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, mb, ids):
        return super().forward(mb, np.asarray(ids, dtype=np.int64))

    def _forward(self, ids):
        out = self.params["tokens"][ids]
        if "positions" in self.params:
            out = out + self.params["positions"][: ids.shape[1]]
        return out

    def _grad_input(self, ids, grad_out):
        return None

    def _accumulate(self, ids, grad_out):
        h = self.out_features
        np.add.at(self.grads["tokens"], ids.reshape(-1), grad_out.reshape(-1, h))
        if "positions" in self.grads:
            self.grads["positions"][: ids.shape[1]] += grad_out.sum(axis=0)

    @classmethod
    def footprint(cls, dims: Dims):
        ids = dims.tokens * ID_BYTES
        return parametric_footprint(ids, dims.activation_bytes(dims.seq_tokens * dims.h))

    @classmethod
    def param_count(cls, dims: Dims) -> int:
        positions = dims.s * dims.h if dims.config.position == "learned" else 0
        return dims.local_vocab * dims.h + positions

    @classmethod
    def widths(cls, config):
        return 1, config.hidden

    @classmethod
    def from_config(cls, layer_index, config: TransformerConfig, dtype, rng, seed):
        learned = config.position == "learned"
        return cls(layer_index, config.vocab, config.hidden, config.seq, dtype, rng, learned)


class TokenCrossEntropy(Rules, Loss):
    """Softmax over the vocabulary and the negative log-likelihood of each target token.

    The loss of a microbatch is ``scale * sum over its sequences of (mean NLL over positions)``.
    With the existing convention ``scale = 1 / (sequences in the whole batch)`` (what
    ``set_loss_scale(layers, batch_sequences)`` sets), the step's loss is the mean over every
    token of the batch, and gradients summed over microbatches equal the whole batch's gradient.
    Caches the probabilities and the int64 targets; the gradient is
    ``(p - onehot(y)) * scale / s``.
    """

    kind = "token_ce"

    def forward(self, mb, logits, targets=None):
        targets = np.asarray(targets, dtype=np.int64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=-1, keepdims=True)
        self._put(mb, "probs", exp / total)
        self._put(mb, "targets", targets)
        picked = np.take_along_axis(shifted, targets[..., None], axis=-1)
        nll = np.log(total) - picked
        return float(nll.sum() * self.scale / logits.shape[1])

    def backward_input(self, mb, grad_out=None):
        targets = self._pop(mb, "targets")
        grad = self._pop(mb, "probs").copy()
        picked = np.take_along_axis(grad, targets[..., None], axis=-1)
        np.put_along_axis(grad, targets[..., None], picked - 1.0, axis=-1)
        return grad * (self.scale / grad.shape[1])

    @classmethod
    def footprint(cls, dims: Dims):
        probs = dims.activation_bytes(dims.tokens * dims.local_vocab)
        return stateless_footprint(probs, dims.tokens * ID_BYTES)

    @classmethod
    def widths(cls, config):
        return config.vocab, config.vocab
