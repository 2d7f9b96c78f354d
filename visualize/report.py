"""A short Markdown report: headed sections, each with a figure, a caption and some text.

Used by ``pebblesim demo`` to gather its figures and tables into one page a person can open.
Images are linked relative to the report, so the folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from simulator.errors import PebbleError


@dataclass(frozen=True)
class Section:
    """One part of the report: a heading, optional Markdown text, an optional image (a path)
    and its caption."""

    title: str
    image: str | Path | None = None
    caption: str = ""
    text: str = ""


def _as_section(item) -> Section:
    if isinstance(item, Section):
        return item
    if isinstance(item, Mapping):
        return Section(**item)
    return Section(*item)


def write_report(
    out_dir,
    sections: Iterable[Section | Mapping | tuple],
    *,
    title: str = "pebblesim report",
    intro: str = "",
    filename: str = "report.md",
) -> Path:
    """Write ``out_dir/filename`` and return its path. ``sections`` are Section objects, dicts
    with the same keys, or ``(title, image, caption[, text])`` tuples. An image that does not
    exist is an error (a report with a broken picture is worse than none)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro.strip(), ""]
    for section in map(_as_section, sections):
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [section.text.strip(), ""]
        if section.image is not None:
            image = Path(section.image)
            located = image if image.is_absolute() else out_dir / image
            if not located.exists() and image.exists():
                located = image.resolve()
            if not located.exists():
                raise PebbleError(f"the report's figure {image} does not exist.")
            link = Path(os.path.relpath(located.resolve(), out_dir.resolve())).as_posix()
            alt = section.caption or section.title
            lines += [f"![{alt}]({link})", ""]
            if section.caption:
                lines += [f"*{section.caption.strip()}*", ""]
    path = out_dir / filename
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


__all__ = ["Section", "write_report"]
