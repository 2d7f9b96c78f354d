"""One Hugging Face ``config.json`` read from disk, and its fields read with their types checked.

Why apart from the architectures (``hf_config``): a user's file can be missing, not JSON, hold
NaN, or give a field the wrong type; each is one sentence naming the field and the file, and
every architecture reads its fields through the same checks, so none of them learns the rules
separately.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from simulator.errors import PebbleError

CONFIG_NAME = "config.json"
MAX_CONFIG_BYTES = 1 << 20
"""A Hugging Face config.json is a few kilobytes (DeepSeek-V3's, the largest here, under 2 KiB);
a file past a mebibyte is not one, and is refused before it is read."""
_REQUIRED = object()


def read_config_file(path_text: str) -> tuple[dict, str]:
    """The JSON object in ``path_text`` (a config.json, or a folder holding one) and the path
    as errors name it."""
    if not path_text:
        raise PebbleError("hf: needs the path of a config.json, like hf:models/llama/config.json.")
    path = Path(path_text).expanduser()
    if path.is_dir():
        path = path / CONFIG_NAME
    source = str(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise PebbleError(
                f"Hugging Face config {source} is over {MAX_CONFIG_BYTES // 1024} KiB; a "
                "config.json is a few kilobytes."
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PebbleError(f"cannot read Hugging Face config {source}: no such file.") from None
    except UnicodeDecodeError:
        raise PebbleError(f"Hugging Face config {source} is not UTF-8 text.") from None
    except OSError as error:
        reason = (error.strerror or "unreadable").lower()
        raise PebbleError(f"cannot read Hugging Face config {source}: {reason}.") from None
    try:
        raw = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise PebbleError(
            f"Hugging Face config {source} is not JSON ({error.msg} at line {error.lineno})."
        ) from None
    except ValueError:
        raise PebbleError(
            f"Hugging Face config {source} holds NaN or Infinity, which no config field takes."
        ) from None
    if not isinstance(raw, dict):
        raise PebbleError(f"Hugging Face config {source} is not a JSON object.")
    return raw, source


def _no_constant(name: str):
    raise ValueError(name)


class ConfigFields:
    """The fields of one config.json for one architecture (``family``, e.g. "llama").

    Why a reader object: every error names the field, the file and, for a missing field, the
    architecture that needs it; a field written as ``null`` (as Hugging Face writes an unset
    one) reads as absent.
    """

    def __init__(self, raw: dict, source: str, family: str) -> None:
        self.raw, self.source, self.family = raw, source, family

    def _get(self, name: str, default):
        value = self.raw.get(name)
        if value is None:
            if default is _REQUIRED:
                raise PebbleError(
                    f"Hugging Face config {self.source} has no {name}, which a {self.family} "
                    "model needs."
                )
            return default
        return value

    def _wrong(self, name: str, value, what: str) -> PebbleError:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        return PebbleError(
            f"{name} in Hugging Face config {self.source} must be {what}, got {shown}."
        )

    def whole(self, name: str, default=_REQUIRED) -> int:
        """A positive whole number."""
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self._wrong(name, value, "a positive whole number")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self._wrong(name, value, "true or false")
        return value

    def text(self, name: str, default: str) -> str:
        value = self._get(name, default)
        if not isinstance(value, str):
            raise self._wrong(name, value, "a string")
        return value

    def probability(self, name: str, default: float) -> float:
        """A dropout probability in [0, 1)."""
        value = self._get(name, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not 0.0 <= value < 1.0:
            raise self._wrong(name, value, "a probability in [0, 1)")
        return float(value)

    def number(self, name: str, default: float) -> float:
        """A finite number of at least 0 (a loss coefficient)."""
        value = self._get(name, default)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or value < 0:
            raise self._wrong(name, value, "a finite number of at least 0")
        return float(value)
