"""The pebble graph as an animation: time sweeps left to right, pebbles pile up and drain as it
goes, and each layer turns purple as its gradient completes.

How, and why it is quick: the static pebble graph (``visualize.pebble``) is rendered twice with
matplotlib's Agg renderer, once complete and once with every pebble bar and purple span cut to
nothing; frame ``k`` takes the columns left of its time from the first and the rest from the
second, plus a black "now" line. Two renders instead of one per frame keeps a 48-frame GIF to
about a second; Pillow (a matplotlib dependency) writes it with one shared palette, so a 4-rank
run is a few hundred KiB. Frames are capped at ``MAX_FRAMES``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from simulator.timeline import Timeline
from visualize.pebble import pebble_figure
from visualize.style import time_span

MAX_FRAMES = 60


def frame_times(timeline: Timeline, frames: int) -> list[float]:
    """The time each frame shows: evenly from 0 to the end of the run (the last frame is the
    whole pebble graph). ``frames`` is clamped to 2..MAX_FRAMES."""
    frames = max(2, min(int(frames), MAX_FRAMES))
    end = time_span(timeline) or 1.0
    return [end * i / (frames - 1) for i in range(frames)]


def _render(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def pebble_frames(
    timeline: Timeline,
    *,
    frames: int = 48,
    dpi: int = 80,
    width: float = 9.0,
    replica: int = 0,
) -> list[Image.Image]:
    """The animation's frames as RGB images (see the module docstring)."""
    fig = pebble_figure(timeline, replica, width=width)
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.axes[0]
    full = _render(canvas)
    fig.set_layout_engine("none")  # keep the layout of the first render for the second
    for patch in ax.patches:
        if (patch.get_gid() or "").startswith(("pebble:", "grad:")):
            patch.set_width(0.0)
    empty = _render(canvas)

    height = full.shape[0]
    box = ax.get_window_extent()
    top, bottom = int(height - box.y1), int(np.ceil(height - box.y0))
    left, right = int(box.x0), int(np.ceil(box.x1))
    columns = np.arange(full.shape[1])
    out = []
    for now in frame_times(timeline, frames):
        x = float(ax.transData.transform((now, 0.0))[0])
        cut = int(round(min(max(x, left), right)))
        frame = np.where((columns < cut)[None, :, None], full, empty)
        frame[top:bottom, max(cut - 1, left) : min(cut + 1, right)] = 0  # the "now" line
        out.append(Image.fromarray(frame, "RGB"))
    return out


def animate_pebbles(
    timeline: Timeline,
    path,
    *,
    frames: int = 48,
    fps: int = 12,
    dpi: int = 80,
    width: float = 9.0,
    replica: int = 0,
) -> Path:
    """Write the animated pebble graph to ``path`` (a looping GIF, the last frame held for a
    second) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = pebble_frames(timeline, frames=frames, dpi=dpi, width=width, replica=replica)
    palette = images[-1].quantize(colors=96, method=Image.Quantize.MEDIANCUT)
    paletted = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    step = max(int(1000 / fps), 20)
    durations = [step] * (len(paletted) - 1) + [max(step, 1200)]
    paletted[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=paletted[1:],
        duration=durations,
        loop=0,
    )
    return path


__all__ = ["MAX_FRAMES", "animate_pebbles", "frame_times", "pebble_frames"]
