"""Fixtures for the figure tests: headless Agg, Timelines built in code (see synthetic.py)."""

from __future__ import annotations

import matplotlib
import pytest

from tests.visualize.synthetic import gpipe_timeline

matplotlib.use("Agg")


@pytest.fixture
def gpipe():
    """GPipe, 3 ranks x 4 microbatches, unit costs, one step."""
    return gpipe_timeline()


@pytest.fixture
def measured():
    """A ms-scale "measured" run: seconds, 2 steps, 2 replicas, all-reduce records."""
    return gpipe_timeline(steps=2, dp=2, scale=1e-3, time_unit="s", source="ray")
