"""The Timeline's ``meta`` block, typed: what run a Timeline describes.

Why a frozen dataclass rather than a dict: every figure, summary and profile reads these fields;
with a dict each reader guessed its own default for a missing key. Here each field has one
default, one type, and ``from_dict`` is the one place a JSON file's meta (schema version 1,
including files written before this type existed) is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from simulator.errors import PebbleError


@dataclass(frozen=True)
class LayerMeta:
    """One layer of the run's model: where it sits and whether it has weights."""

    index: int
    name: str
    kind: str
    stage: int
    rank: int
    has_params: bool


@dataclass(frozen=True)
class TimelineMeta:
    """Which run a Timeline describes. ``ranks`` None means "as many as the events show"."""

    schedule: str = "?"
    ranks: int | None = None
    microbatches: int | None = None
    chunks: int = 1
    stages: int | None = None
    steps: int = 1
    dp: int = 1
    source: str = "?"
    model: str = ""
    microbatch_rows: int = 0
    time_unit: str = "s"
    stage_to_rank: tuple[int, ...] = ()
    layers: tuple[LayerMeta, ...] = ()

    def to_dict(self) -> dict:
        out = asdict(self)
        out["stage_to_rank"] = list(self.stage_to_rank)
        out["layers"] = [asdict(layer) for layer in self.layers]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TimelineMeta:
        """Read a meta block; unknown keys are ignored, missing ones take their defaults."""
        if not isinstance(data, dict):
            raise PebbleError(f"a Timeline's meta must be an object, got {type(data).__name__}.")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        try:
            values["stage_to_rank"] = tuple(values.get("stage_to_rank") or ())
            values["layers"] = tuple(LayerMeta(**layer) for layer in values.get("layers") or ())
        except TypeError as exc:
            raise PebbleError(f"a Timeline's meta.layers is malformed ({exc}).") from None
        return cls(**values)

    def stage_of_layer(self) -> dict[int, int]:
        return {layer.index: layer.stage for layer in self.layers}
