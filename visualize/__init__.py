"""pebblesim.visualize: figures drawn from a Timeline, and nothing else.

Every figure function takes a Timeline (or two, or several) and returns a
``matplotlib.figure.Figure`` built without pyplot, so nothing here touches global backend state
and everything works headless; ``save(fig, stem)`` writes ``stem.png`` and ``stem.svg``.

=============  ==========================================================================
pebble         cached activations per layer over time; purple once a gradient is ready
pipeline       what each rank computes when (F/B/I/W boxes), the bubble left white
memory         cached bytes per rank over time, peaks labelled
breakdown      whole-rank memory per rank by kind, against the device's capacity
step           the step time per rank: compute, recompute, exposed comm, bubble, optimizer
grads          when each layer's weight gradient is complete (and its all-reduce)
overlay        predicted vs measured on one chart, with the makespan error
compare        bubble % against peak memory for several schedules, plus a table
animate        the pebble graph as a GIF
report         a Markdown page embedding the figures
=============  ==========================================================================
"""

from visualize.animate import animate_pebbles, frame_times
from visualize.breakdown import breakdown_figure, breakdown_rows
from visualize.compare import compare_figure
from visualize.compare_table import comparison_rows, format_table
from visualize.grads import grads_figure
from visualize.grads_data import grad_rows
from visualize.memory import human_bytes, memory_figure, memory_peaks
from visualize.overlay import makespan_error, overlay_figure
from visualize.pebble import pebble_figure
from visualize.pebble_data import grad_segments, pebble_counts, pebble_intervals
from visualize.pipeline import pipeline_figure
from visualize.pipeline_data import pipeline_boxes
from visualize.report import Section, write_report
from visualize.step_breakdown import step_breakdown_figure
from visualize.style import save

# what ``pebblesim plot --kind`` draws: one Timeline in, one Figure out
FIGURES = {
    "pebble": pebble_figure,
    "pipeline": pipeline_figure,
    "memory": memory_figure,
    "grads": grads_figure,
}

__all__ = [
    "FIGURES",
    "Section",
    "breakdown_figure",
    "breakdown_rows",
    "animate_pebbles",
    "compare_figure",
    "comparison_rows",
    "format_table",
    "frame_times",
    "grad_rows",
    "grad_segments",
    "grads_figure",
    "human_bytes",
    "makespan_error",
    "memory_figure",
    "memory_peaks",
    "overlay_figure",
    "pebble_counts",
    "pebble_figure",
    "pebble_intervals",
    "pipeline_boxes",
    "pipeline_figure",
    "save",
    "step_breakdown_figure",
    "write_report",
]
