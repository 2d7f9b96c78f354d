"""The small search the advise tests run: an 8-layer bf16 transformer with math attention on
A100-40GB GPUs whose memory is shrunk so that the limit binds."""

from __future__ import annotations

from schedules.registry import SCHEDULES
from simulator.analytic.advise import AUTO, Request, RunText
from simulator.analytic.cost_source import parse_hardware
from simulator.analytic.hardware import parse_hardware_preset
from simulator.model.parse import parse_model

MODEL = "transformer:layers=8,hidden=64,heads=4,seq=32,vocab=96,dtype=bfloat16,attention=math"


def small_request(memory: str | None = "2MiB", zero: bool = True, **changes):
    """(request, run text, hardware) of ``MODEL`` searched over every family and auto on 8 GPUs
    (``gpus``), 16 sequences a step (``global_batch``), each GPU holding ``memory`` (None: the
    device's own); other ``Request`` fields through ``changes``."""
    return request_for(MODEL, memory, zero, **changes)


def request_for(model: str, memory: str | None = "2MiB", zero: bool = True, **changes):
    """``small_request`` of another ``model`` (a mixture of experts, a precision recipe)."""
    hardware = "a100-40gb" + (f",memory={memory}" if memory is not None else "")
    preset = parse_hardware_preset(hardware)
    request = Request(
        spec=parse_model(model),
        hardware=preset,
        gpus=changes.pop("gpus", 8),
        global_batch=changes.pop("global_batch", 16),
        memory_limit=preset.memory_bytes,
        families=changes.pop("families", (*SCHEDULES, AUTO)),
        distributed_optimizer=zero,
        **changes,
    )
    return request, RunText(model, hardware), parse_hardware(hardware)
