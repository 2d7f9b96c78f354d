"""The memory ``advise`` keeps free on every GPU: what a real run needs beyond the bytes the
memory model counts.

Why a reserve: the whole-rank memory pebblesim predicts (parameters, gradients, optimizer state,
receive buffers, the activation peak) is what the tensors hold. A real process also holds the
CUDA context (the driver's per-process state and loaded kernels: about 0.3-0.6 GiB on an A100 or
H100 with CUDA 12's lazy module loading, more with eager loading), cuBLAS and NCCL workspaces
(NCCL's buffers per communicator; ``NCCL_BUFFSIZE`` is 4 MiB per channel and peer) and the
caching allocator's fragmentation: blocks reserved but not allocatable for the next tensor, which
PyTorch's "CUDA semantics: memory management" notes (``memory_reserved`` against
``memory_allocated``, ``expandable_segments`` to reduce it) and the PyTorch devlog "When does
fragmentation occur in the CUDA caching allocator?" (ezyang) describe. A plan that uses 79.3 of
80 GiB fits on paper and runs out of memory in practice.

The default is ``DEFAULT_HEADROOM``: 5% of the device (4 GiB of an 80 GiB H100, 2 GiB of a
40 GiB A100): about 1 GiB of context and workspaces plus a few percent of the device for
fragmentation. It is a stated assumption, not a measurement; ``--headroom 2GiB``, ``--headroom
3%`` or ``--headroom 0`` overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import PebbleError
from simulator.units import human_bytes, parse_bytes

DEFAULT_HEADROOM = "5%"


@dataclass(frozen=True)
class Headroom:
    """A reserve per GPU: a share of the device (``fraction``) or a fixed number of bytes."""

    fraction: float | None = None
    fixed_bytes: int | None = None

    @classmethod
    def parse(cls, text: str) -> Headroom:
        """``5%``, ``0``, ``4GiB``, ``512MiB`` or ``2e9`` -> a reserve; one sentence if not."""
        raw = str(text).strip()
        try:
            if raw.endswith("%"):
                share = float(raw[:-1].strip())
                if not 0 <= share < 100:
                    raise ValueError(raw)
                return cls(fraction=share / 100)
            return cls(fixed_bytes=int(parse_bytes(raw)))
        except ValueError:
            raise PebbleError(
                f"cannot read --headroom {raw[:40]!r}; write bytes (4GiB, 512MiB, 0) or a share "
                "of the device below 100% (5%)."
            ) from None

    def bytes_of(self, device: int) -> int:
        """The reserve on a GPU of ``device`` bytes."""
        if self.fraction is not None:
            return int(self.fraction * device)
        return self.fixed_bytes or 0

    def text(self, device: int) -> str:
        """``4.0 GiB (5% of 80.0 GiB)`` or ``2.0 GiB``: what the header says."""
        reserve = human_bytes(self.bytes_of(device))
        if self.fraction is not None:
            return f"{reserve} ({100 * self.fraction:g}% of {human_bytes(device)})"
        return reserve


def usable_memory(device: int, headroom: Headroom) -> int:
    """The bytes a configuration may use: the device (or ``--memory-limit``) less the reserve;
    one sentence when the reserve leaves nothing."""
    reserve = headroom.bytes_of(device)
    if reserve >= device:
        raise PebbleError(
            f"--headroom {human_bytes(reserve)} leaves nothing of {human_bytes(device)} per GPU; "
            "give a smaller reserve."
        )
    return device - reserve
