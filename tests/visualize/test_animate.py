"""The animated pebble graph: a small GIF with a bounded number of frames that fill in."""

from __future__ import annotations

import numpy as np
from PIL import Image

from visualize.animate import MAX_FRAMES, animate_pebbles, frame_times, pebble_frames
from visualize.style import time_span


def test_gif_has_the_requested_frames_and_stays_small(tmp_path, gpipe):
    path = animate_pebbles(gpipe, tmp_path / "pebbles.gif", frames=12)
    assert path.exists()
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 12
        assert gif.size[0] <= 900
    assert path.stat().st_size < 2 * 1024**2


def test_frame_count_is_bounded(gpipe):
    times = frame_times(gpipe, 500)
    assert len(times) == MAX_FRAMES
    assert times[0] == 0.0 and times[-1] == time_span(gpipe)
    assert len(frame_times(gpipe, 1)) == 2


def test_frames_fill_in_as_time_passes(gpipe):
    frames = [np.asarray(f, dtype=float) for f in pebble_frames(gpipe, frames=5, dpi=50)]
    ink = [(255 - f).sum() for f in frames]  # darker = more drawn
    assert ink[0] < ink[2] < ink[-1]
    assert all(f.shape == frames[0].shape for f in frames)
