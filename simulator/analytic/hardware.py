"""GPU presets for the FLOP cost model and the per-rank memory check, with a parser for
``--hardware h100,efficiency=0.45``.

Why an efficiency: a datasheet gives peak dense Tensor Core FLOP/s, which no training run
sustains. Each preset carries the fraction of peak (model FLOPs utilisation, MFU) that published
large-scale training reached on that GPU; ``sustained_flops`` is what the cost model should
charge.

Units: FLOP/s, bytes and bytes/s. Every bandwidth is per GPU and per direction (NVIDIA quotes
NVLink as the sum of both directions: 600 GB/s on A100 is 300 GB/s each way). Memory capacity is
the datasheet figure read in binary units (HBM stacks are power-of-two sized: "80GB" is 80 GiB);
the driver reports about 1% less (ECC and reserved pages), and a CUDA context takes a further
few hundred MiB. Override it with ``memory=`` where that matters.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace

from simulator.errors import PebbleError

GiB = 2**30


@dataclass(frozen=True)
class HardwarePreset:
    """One GPU in a typical 8-GPU node (DGX/HGX)."""

    name: str
    peak_flops: float  # dense BF16 Tensor Core FLOP/s (no 2:4 sparsity)
    memory_bytes: int  # HBM capacity
    memory_bandwidth: float  # HBM bytes/s
    nvlink_bandwidth: float  # bytes/s per GPU, one direction, within a node
    internode_bandwidth: float  # bytes/s per GPU, one direction, across nodes (one NIC per GPU)
    gpus_per_node: int
    efficiency: float  # fraction of peak_flops sustained by real training (MFU)
    source: str = ""
    efficiency_source: str = ""
    # the per-operation roofline (``simulator.analytic.roofline``): its three fitted numbers
    # (``FITTED`` says on which published runs) and the share of tensor-parallel communication
    # hidden under compute (stated: Megatron-LM's --tp-comm-overlap is off by default)
    gemm_efficiency: float = 0.80  # best share of peak a large bf16 GEMM sustains
    gemm_dimension: float = 128.0  # smallest GEMM dimension at which it reaches half that
    kernel_floor: float = 4e-6  # seconds every kernel costs at least (launch and tail)
    tp_overlap: float = 0.0
    # 1: each gradient's data-parallel reduction starts as soon as it is complete, under the
    # rest of the backward (--overlap-grad-reduce); 0: after the rank's backward is done,
    # Megatron-LM's default and what the published Megatron runs used
    dp_overlap: float = 0.0
    # shared resources (``roofline_costs``, ``sharded_comm``): how much slower compute runs
    # while a collective overlaps it (NCCL's kernels run one thread block per channel, and with
    # the 8-16 channels it opens over NVLink or a NIC they take 8-16 of an A100's 108 SMs,
    # 7-15%, of an H100's 132, 6-12%, plus the HBM traffic of the copies; we take 10%, a
    # stated estimate, not a fit), and how many GPUs share one NIC (DGX A100/H100: one NIC a
    # GPU; collectives of GPUs sharing a NIC share its ``internode_bandwidth``)
    comm_contention: float = 0.10
    gpus_per_nic: int = 1
    # None: time each operation on the roofline; a number (``efficiency=`` given): charge every
    # FLOP at that share of peak, the end-to-end model of earlier versions
    flop_model: bool = False
    # the host link and host memory (activation offload: ``simulator.analytic.offload_costs``):
    # achieved bytes/s per direction of one GPU's link to host memory, how many GPUs share one
    # such link, and the host memory of one node (the presets below say where each comes from)
    host_link_bandwidth: float = 25e9
    gpus_per_host_link: int = 1
    host_memory_bytes: int = 1024 * GiB
    host_source: str = ""

    def __post_init__(self) -> None:
        for name in _POSITIVE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PebbleError(f"hardware {name} must be a number, got {value!r}.")
            if not math.isfinite(value) or value <= 0:
                raise PebbleError(f"hardware {name} must be positive and finite, got {value!r}.")
        if isinstance(self.gpus_per_node, bool) or not isinstance(self.gpus_per_node, int):
            raise PebbleError(
                f"hardware gpus_per_node must be a whole number, got {self.gpus_per_node!r}."
            )
        if self.efficiency > 1:
            raise PebbleError(
                f"hardware efficiency is a fraction of peak in (0, 1], got {self.efficiency!r}."
            )
        if self.gemm_efficiency > 1:
            raise PebbleError(
                "hardware gemm_efficiency is a fraction of peak in (0, 1], got "
                f"{self.gemm_efficiency!r}."
            )
        if self.dp_overlap not in (0, 1):
            raise PebbleError(f"hardware dp_overlap is 0 or 1, got {self.dp_overlap!r}.")
        if not 0.0 <= self.comm_contention <= 1.0:
            raise PebbleError(
                f"hardware contention is a fraction in [0, 1], got {self.comm_contention!r}."
            )
        if isinstance(self.gpus_per_nic, bool) or not isinstance(self.gpus_per_nic, int):
            raise PebbleError(
                f"hardware gpus_per_nic must be a whole number, got {self.gpus_per_nic!r}."
            )
        if self.gpus_per_nic < 1:
            raise PebbleError(f"hardware gpus_per_nic must be at least 1, got {self.gpus_per_nic}.")
        if not 0.0 <= self.tp_overlap <= 1.0:
            raise PebbleError(
                f"hardware tp_overlap is a fraction in [0, 1], got {self.tp_overlap!r}."
            )


_FRACTION_FIELDS = ("gemm_efficiency", "tp_overlap")
_POSITIVE_FIELDS = (
    "peak_flops",
    "memory_bytes",
    "memory_bandwidth",
    "nvlink_bandwidth",
    "internode_bandwidth",
    "gpus_per_node",
    "efficiency",
    "gemm_efficiency",
    "gemm_dimension",
    "kernel_floor",
)

# Datasheets: NVIDIA A100 Tensor Core GPU datasheet (BF16 312 TFLOPS dense, 624 with sparsity;
# 40GB HBM2 at 1,555 GB/s, 80GB HBM2e at 2,039 GB/s for SXM; NVLink 600 GB/s); NVIDIA H100
# Tensor Core GPU datasheet, SXM column (BF16 1,979 TFLOPS *with sparsity*, so 989.4 dense per
# the H100 architecture whitepaper; 80GB HBM3 at 3.35 TB/s; NVLink 900 GB/s); NVIDIA H200
# datasheet, SXM (same Hopper compute as H100 SXM; 141GB HBM3e at 4.8 TB/s; NVLink 900 GB/s).
# Inter-node: DGX A100 has eight 200 Gb/s HDR InfiniBand ConnectX-6 ports for compute traffic,
# one per GPU (25 GB/s each way); DGX H100 and DGX H200 have eight 400 Gb/s NDR ConnectX-7
# (50 GB/s each way).
#
# Efficiency: A100 - Megatron-LM (Korthikanti et al. 2022, "Reducing Activation Recomputation
# in Large Transformer Models", and the Megatron-LM README's table) reports 51.4% MFU for GPT-3
# 175B on A100-80GB (Selene), 41.5% for 22B, 56% for 530B/1T; we take 0.50. The same A100 chip
# gets the same default in its 40GB form, although less memory usually forces more recompute.
# H100 - the Llama 3 paper (Dubey et al. 2024, Table 4) reports 38-43% BF16 MFU training 405B on
# 8,192-16,384 H100s (430, 400 and 380 TFLOP/s per GPU); we take 0.40. H200 - no large-scale MFU
# has been published; it has the H100's compute, so we assume the H100's 0.40.
_A100_SOURCE = "NVIDIA A100 datasheet (SXM4); DGX A100: 8x HDR 200 Gb/s InfiniBand"
_A100_EFFICIENCY = "Megatron-LM / Korthikanti et al. 2022: 51.4% MFU, GPT-3 175B on A100-80GB"
_HOPPER_EFFICIENCY = "Dubey et al. 2024 (Llama 3), Table 4: 38-43% BF16 MFU on H100"

# The roofline's fitted numbers (``simulator.analytic.roofline``), fitted by
# ``benchmarks/calibrate_time.py`` on the named rows of ``published_runs.CALIBRATION_SPLIT``
# and checked on the other rows by ``tests/simulator/test_time_calibration.py``:
# A100 on narayanan-t1-3.6b, -39.1b, -310.1b, korthikanti-t5-22b-selective, -1t-full,
# megascale-t2-175b-512gpu, -6144gpu and megascale-f9-530b-4480gpu (all three numbers);
# H100 on llama3-t4-8k-8192gpu (gemm_efficiency only; the other two are the A100's). The 40GB
# A100 is the same chip; H200 and GH200 are assumed to be the H100's. Refitted on the same rows
# when the element-wise kernels became Megatron-LM's fused ones (``roofline._elementwise``), and
# again when the backward's tensor-parallel collectives ran under its GEMMs (``tensor_comm``), a
# fused attention computed its causal tiles at its own backward rate and a selective recompute
# was priced as the kernels it re-runs.
A100_FIT = {"gemm_efficiency": 0.7226, "gemm_dimension": 55.24, "kernel_floor": 4.759e-05}
HOPPER_FIT = {"gemm_efficiency": 0.5802, "gemm_dimension": 55.24, "kernel_floor": 4.759e-05}

HARDWARE_PRESETS: dict[str, HardwarePreset] = {
    "a100-40gb": HardwarePreset(
        name="a100-40gb",
        peak_flops=312e12,
        memory_bytes=40 * GiB,
        memory_bandwidth=1555e9,
        nvlink_bandwidth=300e9,
        internode_bandwidth=25e9,
        gpus_per_node=8,
        efficiency=0.50,
        source=_A100_SOURCE,
        efficiency_source=_A100_EFFICIENCY + " (same chip, assumed)",
        **A100_FIT,
    ),
    "a100-80gb": HardwarePreset(
        name="a100-80gb",
        peak_flops=312e12,
        memory_bytes=80 * GiB,
        memory_bandwidth=2039e9,
        nvlink_bandwidth=300e9,
        internode_bandwidth=25e9,
        gpus_per_node=8,
        efficiency=0.50,
        source=_A100_SOURCE,
        efficiency_source=_A100_EFFICIENCY,
        **A100_FIT,
    ),
    "h100-80gb": HardwarePreset(
        name="h100-80gb",
        peak_flops=989.4e12,
        memory_bytes=80 * GiB,
        memory_bandwidth=3.35e12,
        nvlink_bandwidth=450e9,
        internode_bandwidth=50e9,
        gpus_per_node=8,
        efficiency=0.40,
        source="NVIDIA H100 datasheet (SXM5) and whitepaper; DGX H100: 8x NDR 400 Gb/s",
        efficiency_source=_HOPPER_EFFICIENCY,
        **HOPPER_FIT,
    ),
    "h200": HardwarePreset(
        name="h200",
        peak_flops=989.4e12,
        memory_bytes=141 * GiB,
        memory_bandwidth=4.8e12,
        nvlink_bandwidth=450e9,
        internode_bandwidth=50e9,
        gpus_per_node=8,
        efficiency=0.40,
        source="NVIDIA H200 datasheet (SXM); DGX H200: 8x NDR 400 Gb/s",
        efficiency_source=_HOPPER_EFFICIENCY + " (H100 figure, assumed for H200)",
        **HOPPER_FIT,
    ),
}

# Host links (activation offload). Achieved copy bandwidth of pinned memory, per direction: PCIe
# Gen4 x16 is 32 GB/s raw (about 25 GB/s achieved, as NVIDIA's bandwidthTest reports on A100);
# Gen5 x16 64 GB/s raw (about 50 achieved). DGX A100 user guide: two GPUs share each of the four
# PCIe Gen4 switches' uplinks to the CPUs, and 1 TB of system memory (2 TB on the 640 GB
# model). DGX H100 / H200 user guides: 2 TB of system memory; each GPU's Gen5 x16 link is taken
# as its own (assumed). PipeOffload's runtime (sail-sg/zero-bubble-pipeline-parallelism,
# megatron/core/zbpp_utils.py at 13f84e20) profiled only 15 GB/s (A100) and 21 GB/s (H100) with
# one copy stream: override with host= where that is the case. GH200: NVIDIA GH200 Grace Hopper
# Superchip datasheet: NVLink-C2C 900 GB/s (450 each way), 96 GB HBM3 at 4 TB/s, 480 GB
# LPDDR5X; one superchip is its own host (one GPU a node), with one NDR 400 Gb/s NIC.
_PCIE4_HOST = "PCIe Gen4 x16, ~25 GB/s achieved each way; DGX A100: 2 GPUs a switch uplink, 1 TB"
_PCIE5_HOST = "PCIe Gen5 x16, ~50 GB/s achieved each way (own link, assumed); DGX H100/H200: 2 TB"
_HOST_LINKS = {
    "a100-40gb": (25e9, 2, 1024 * GiB, _PCIE4_HOST),
    "a100-80gb": (25e9, 2, 1024 * GiB, _PCIE4_HOST),
    "h100-80gb": (50e9, 1, 2048 * GiB, _PCIE5_HOST),
    "h200": (50e9, 1, 2048 * GiB, _PCIE5_HOST),
    "gh200": (450e9, 1, 480 * GiB, "NVLink-C2C 900 GB/s total (450 each way); 480 GB LPDDR5X"),
}
HARDWARE_PRESETS["gh200"] = HardwarePreset(
    name="gh200",
    peak_flops=989.4e12,
    memory_bytes=96 * GiB,
    memory_bandwidth=4.0e12,
    nvlink_bandwidth=450e9,
    internode_bandwidth=50e9,
    gpus_per_node=1,
    efficiency=0.40,
    source="NVIDIA GH200 Grace Hopper Superchip datasheet (96 GB HBM3); 1x NDR 400 Gb/s",
    efficiency_source=_HOPPER_EFFICIENCY + " (H100 figure, assumed for the same Hopper GPU)",
    **HOPPER_FIT,
)
HARDWARE_PRESETS.update(
    {
        name: replace(
            preset,
            host_link_bandwidth=_HOST_LINKS[name][0],
            gpus_per_host_link=_HOST_LINKS[name][1],
            host_memory_bytes=_HOST_LINKS[name][2],
            host_source=_HOST_LINKS[name][3],
        )
        for name, preset in HARDWARE_PRESETS.items()
    }
)
_POSITIVE_FIELDS += ("host_link_bandwidth", "host_memory_bytes", "gpus_per_host_link")

_ALIASES = {
    "h100": "h100-80gb",
    "h100-sxm": "h100-80gb",
    "h200-141gb": "h200",
    "h200-sxm": "h200",
}

# Short override keys -> field names.
_KEYS = {
    "efficiency": "efficiency",
    "eff": "efficiency",
    "mfu": "efficiency",
    "flops": "peak_flops",
    "peak": "peak_flops",
    "memory": "memory_bytes",
    "mem": "memory_bytes",
    "membw": "memory_bandwidth",
    "nvlink": "nvlink_bandwidth",
    "internode": "internode_bandwidth",
    "ib": "internode_bandwidth",
    "gpus": "gpus_per_node",
    "gpus_per_node": "gpus_per_node",
    "host": "host_link_bandwidth",
    "hostmem": "host_memory_bytes",
    "tp_overlap": "tp_overlap",
    "dp_overlap": "dp_overlap",
    "contention": "comm_contention",
    "comm_contention": "comm_contention",
    "gpus_per_nic": "gpus_per_nic",
}
_KEYS.update({f.name: f.name for f in fields(HardwarePreset) if f.name in _POSITIVE_FIELDS})

_PREFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15}
_BINARY = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_QUANTITY = re.compile(r"([0-9.]+(?:e[+-]?[0-9]+)?)\s*([kmgtp]i?)?\s*(b|b/s|flop/s|flops)?")


def _number(key: str, text: str) -> float:
    """``0.45``, ``989e12``, ``989T``, ``80GiB``, ``3.35TB/s`` -> float."""
    raw = text.strip()
    try:
        return float(raw)
    except ValueError:
        pass
    match = _QUANTITY.fullmatch(raw.lower())
    prefix = match and (match.group(2) or "")
    if not match or (prefix not in _PREFIX and prefix not in _BINARY):
        raise PebbleError(
            f"cannot read hardware {key}={text!r}; write a number such as 0.45, 989e12, "
            "989T or 80GiB."
        )
    scale = _BINARY[prefix] if prefix in _BINARY else _PREFIX[prefix]
    return float(match.group(1)) * scale


def _preset_named(name: str) -> HardwarePreset:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key == "a100":
        raise PebbleError("hardware 'a100' is ambiguous; write a100-40gb or a100-80gb.")
    if key not in HARDWARE_PRESETS:
        choices = ", ".join([*HARDWARE_PRESETS, *_ALIASES])
        raise PebbleError(f"unknown hardware preset {name.strip()!r}; choose one of {choices}.")
    return HARDWARE_PRESETS[key]


def parse_hardware_preset(text: str) -> HardwarePreset:
    """``"h100"``, ``"h100-80gb"`` or ``"h100,efficiency=0.45,memory=79GiB"`` -> a preset.

    Override keys: efficiency (eff, mfu), flops (peak), memory (mem), membw, nvlink,
    internode (ib), gpus, or any field name. Numbers may carry an SI (``T``) or binary (``GiB``)
    prefix.
    """
    name, *parts = (text or "").split(",")
    if not name.strip():
        raise PebbleError("name a hardware preset, e.g. --hardware h100-80gb.")
    preset = _preset_named(name)
    changes: dict[str, object] = {}
    given: dict[str, str] = {}  # field -> the key that set it: a later one would win silently
    for part in parts:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            raise PebbleError(
                f"cannot read hardware override {part.strip()!r}; write key=value, "
                "e.g. h100,efficiency=0.45."
            )
        if key not in _KEYS:
            raise PebbleError(
                f"unknown hardware key {key!r}; use one of {', '.join(sorted(set(_KEYS)))}."
            )
        field_name = _KEYS[key]
        if field_name in given:
            earlier = given[field_name]
            named = "is given twice" if earlier == key else f"sets {field_name}, as {earlier} did"
            raise PebbleError(f"hardware {key} {named}; give each value once.")
        given[field_name] = key
        number = _number(key, value)
        if field_name in ("tp_overlap", "dp_overlap", "comm_contention") and number == 0:
            changes[field_name] = 0.0
            continue
        if not math.isfinite(number) or number <= 0:
            raise PebbleError(f"hardware {key} must be positive and finite, got {value.strip()!r}.")
        if field_name in ("memory_bytes", "gpus_per_node", "gpus_per_nic"):
            if number != int(number):
                raise PebbleError(f"hardware {key} must be a whole number, got {value.strip()!r}.")
            number = int(number)
        changes[field_name] = number
    if "efficiency" in changes:  # the user names an end-to-end MFU: charge every FLOP at it
        changes["flop_model"] = True
    return replace(preset, **changes) if changes else preset


def sustained_flops(preset: HardwarePreset) -> float:
    """The FLOP/s real training sustains: peak times the achieved efficiency."""
    return preset.peak_flops * preset.efficiency


def hardware_rows() -> list[tuple[str, str, str]]:
    """(name, summary, source) for every hardware preset, for listings."""
    rows = []
    for name, p in HARDWARE_PRESETS.items():
        summary = (
            f"{p.peak_flops / 1e12:g} TFLOP/s bf16 x {p.efficiency:g} efficiency, "
            f"{p.memory_bytes / GiB:g} GiB at {p.memory_bandwidth / 1e12:g} TB/s, "
            f"NVLink {p.nvlink_bandwidth / 1e9:g} GB/s, inter-node {p.internode_bandwidth / 1e9:g}"
            f" GB/s (per GPU, each way), {p.gpus_per_node} per node"
        )
        rows.append((name, summary, f"{p.source}; efficiency: {p.efficiency_source}"))
    return rows
