"""The ``advise`` search as one picture: step time against the fullest GPU's memory for every
configuration it simulated, the memory limit, the Pareto front of those that fit, and the top
configurations numbered (their names listed beside the plot).

It takes plain data (``ParetoPoint``), not Timelines: a search simulates dozens of runs and keeps
only their headline figures. Lower-left is better; nothing right of the limit line fits.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass

from matplotlib.figure import Figure

from simulator.units import byte_unit, human_bytes, human_time, time_scale
from visualize.style import OKABE_ITO, new_figure

MAX_LABELLED = 10


@dataclass(frozen=True)
class ParetoPoint:
    """One simulated configuration: its name, step time (s), whole-rank bytes of its fullest
    GPU, whether every GPU fits, its place in the ranked table (None: not listed) and its
    recompute and offload policies (configurations that fit are marked by policy)."""

    label: str
    step_time: float
    peak_bytes: int
    fits: bool
    rank: int | None = None
    recompute: str = "none"  # the activation recomputation policy
    offload: str = "none"  # the activation offload policy


def pareto_front(points: list[ParetoPoint]) -> list[ParetoPoint]:
    """The fitting points no other fitting point beats on both time and memory, by memory."""
    front: list[ParetoPoint] = []
    for p in sorted((p for p in points if p.fits), key=lambda p: (p.peak_bytes, p.step_time)):
        if not front or p.step_time < front[-1].step_time:
            front.append(p)
    return front


def pareto_figure(
    points: list[ParetoPoint], limit_bytes: int, title: str = "", note: str = ""
) -> Figure:
    """Step time against peak memory per GPU, one marker per simulated configuration; ``note``
    (e.g. how many were pruned unsimulated) goes over the legend.

    The time axis zooms on the numbered configurations (the top rows are often within a few
    percent of each other, the slowest simulated several times slower): configurations above
    the view are drawn as triangles on its top edge, and the right-hand axis reads the time as
    percent slower than the fastest."""
    fig = new_figure(11.0, 5.6)
    ax, side = fig.subplots(1, 2, width_ratios=[2.6, 1])
    view = _View.of(points, limit_bytes)
    for name, group, style in _groups(points):
        shown = [p for p in group if p.step_time <= view.top]
        ax.scatter(
            [view.x(p) for p in shown],
            [view.y(p) for p in shown],
            label=f"{name} ({len(group)})",
            **style,
        )
    above = [p for p in points if p.step_time > view.top]
    if above:
        slowest = max(p.step_time for p in above)
        ax.scatter(
            [view.x(p) for p in above],
            [view.ceiling() * view.time_factor] * len(above),
            marker="^",
            s=30,
            color=[_off_top_colour(p) for p in above],
            clip_on=False,
            zorder=2,
        )
        ax.scatter(  # the legend's entry: a grey triangle (the markers take their fit's colour)
            [],
            [],
            marker="^",
            s=30,
            color=_OVER["color"],
            label=(
                f"slower, off the top ({len(above)}; up to {human_time(slowest)}), in their colour"
            ),
        )
    front = pareto_front(points)
    ax.step(
        [view.x(p) for p in front],
        [view.y(p) for p in front],
        where="post",
        color=OKABE_ITO["green"],
        lw=1.5,
        label="Pareto front (fits)",
        zorder=1,
    )
    ax.axvline(
        limit_bytes / view.byte_factor,
        color=OKABE_ITO["vermillion"],
        ls="--",
        lw=1.2,
        label=f"memory limit {human_bytes(limit_bytes)}",
    )
    view.apply(ax)
    _number_top(ax, side, points, view)
    handles, labels = ax.get_legend_handles_labels()
    legend = side.legend(handles, labels, loc="lower left", fontsize=8, frameon=False)
    if note:
        legend.set_title(note, prop={"size": 7.5})
        legend._legend_box.align = "left"
    ax.set_title(_wrapped(title or "advise: step time against memory"), fontsize=10, loc="left")
    return fig


TITLE_WIDTH = 100  # characters on one title line (the plot's width at fontsize 10)


def _wrapped(title: str) -> str:
    """``title`` on lines of at most TITLE_WIDTH characters, broken first after ``": "``."""
    if len(title) <= TITLE_WIDTH:
        return title
    head, sep, rest = title.partition(": ")
    parts = [head + sep.rstrip(), rest] if sep else [title]
    return "\n".join(textwrap.fill(part, TITLE_WIDTH) for part in parts)


_FITS = {"s": 22, "alpha": 0.6, "zorder": 2}
_OVER = {"s": 22, "marker": "x", "color": "#9E9E9E", "zorder": 2}
# configurations that fit, by recompute policy: (marker, colour); other policies share the last
_POLICY_MARKS = {
    "none": ("o", OKABE_ITO["blue"]),
    "selective": ("s", OKABE_ITO["purple"]),
    "full": ("D", OKABE_ITO["sky"]),
}
_OTHER_MARK = ("P", OKABE_ITO["black"])
# with offload, the marker is the offload policy's and the colour stays the recompute policy's:
# full a down triangle (sent down to the host), selective a star (an ``x`` is over the limit)
_OFFLOAD_MARKS = {"full": "v", "selective": "*"}
_OTHER_OFFLOAD_MARK = "h"


def _marker(recompute: str, offload: str) -> str:
    if offload == "none":
        return _POLICY_MARKS.get(recompute, _OTHER_MARK)[0]
    return _OFFLOAD_MARKS.get(offload, _OTHER_OFFLOAD_MARK)


def _off_top_colour(p: ParetoPoint) -> str:
    """A configuration above the view: its recompute policy's colour if it fits, else grey."""
    return _POLICY_MARKS.get(p.recompute, _OTHER_MARK)[1] if p.fits else _OVER["color"]


def _order(known: list[str], policies: set[str]) -> list[str]:
    return sorted(policies, key=lambda x: (known.index(x) if x in known else 99, x))


def _groups(points: list[ParetoPoint]) -> list[tuple[str, list[ParetoPoint], dict]]:
    """(legend name, points, scatter style): those that fit, one group per recompute and
    offload policy (just ``fits`` when none recomputes or offloads; the colour is the
    recompute policy's, the marker the pair's), then those over the limit."""
    fits = [p for p in points if p.fits]
    recomputes = _order(list(_POLICY_MARKS), {p.recompute for p in fits})
    offloads = _order(["none", *_OFFLOAD_MARKS], {p.offload for p in fits})
    groups = []
    for policy in recomputes:
        color = _POLICY_MARKS.get(policy, _OTHER_MARK)[1]
        for offload in offloads:
            group = [p for p in fits if p.recompute == policy and p.offload == offload]
            if not group:
                continue
            name = "fits"
            if recomputes != ["none"]:
                name += f", recompute {policy}"
            if offloads != ["none"]:
                name += ", no offload" if offload == "none" else f", offload {offload}"
            style = {**_FITS, "marker": _marker(policy, offload), "color": color}
            if offload != "none":
                style.update(s=40, alpha=0.8)  # a triangle and a star read smaller than a dot
            groups.append((name, group, style))
    if not fits:
        groups.append(("fits", [], {**_FITS, "color": OKABE_ITO["blue"]}))
    groups.append(("over the limit", [p for p in points if not p.fits], _OVER))
    return groups


ZOOM_WHEN = 1.5  # zoom on the numbered points when the slowest is this many times their slowest
CLOSE = (0.04, 0.05)  # axes fractions (x, y): numbers of points this close share one label


@dataclass(frozen=True)
class _View:
    """The axes' units and limits: bytes in the unit of the largest, seconds in the unit of the
    fastest, and the time range shown (``best`` to ``top``, seconds)."""

    byte_factor: float
    byte_unit: str
    time_factor: float
    time_unit: str
    best: float
    top: float
    left: float  # x limits, in the byte unit
    right: float

    @staticmethod
    def of(points: list[ParetoPoint], limit_bytes: int) -> _View:
        largest = max([limit_bytes, *(p.peak_bytes for p in points)])
        smallest = min([limit_bytes, *(p.peak_bytes for p in points)])
        byte_factor, unit = byte_unit(largest)
        times = [p.step_time for p in points] or [0.0]
        best, slowest = min(times), max(times)
        ranked = [p.step_time for p in points if p.rank is not None]
        top = slowest
        if ranked and slowest > ZOOM_WHEN * max(ranked):
            top = max([*ranked, *(p.step_time for p in pareto_front(points))])
            top = top if top <= ZOOM_WHEN * max(ranked) else max(ranked)
        time_factor, time_unit = time_scale(best)
        pad = 0.04 * (largest - smallest) or 0.05 * largest
        return _View(
            byte_factor,
            unit,
            time_factor,
            time_unit,
            best,
            top,
            (smallest - pad) / byte_factor,
            (largest + pad) / byte_factor,
        )

    def x(self, p: ParetoPoint) -> float:
        return p.peak_bytes / self.byte_factor

    def y(self, p: ParetoPoint) -> float:
        return p.step_time * self.time_factor

    def pad(self) -> float:
        return max(0.1 * (self.top - self.best), 0.002 * self.best) or 1.0

    def ceiling(self) -> float:
        """The top of the time axis, seconds."""
        return self.top + self.pad()

    def apply(self, ax) -> None:
        """Limits, labels and the right-hand axis (percent slower than the fastest)."""
        ax.set_xlim(self.left, self.right)
        ax.set_ylim((self.best - self.pad()) * self.time_factor, self.ceiling() * self.time_factor)
        ax.set_xlabel(f"peak memory of the fullest GPU ({self.byte_unit})")
        ax.set_ylabel(f"step time ({self.time_unit})")
        ax.grid(alpha=0.3)
        if self.best > 0:
            scale = self.best * self.time_factor
            right = ax.secondary_yaxis(
                "right",
                functions=(lambda t: 100 * (t / scale - 1), lambda d: scale * (1 + d / 100)),
            )
            right.set_ylabel("slower than the fastest (%)")

    def fraction(self, ax, p: ParetoPoint) -> tuple[float, float]:
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        return (self.x(p) - x0) / (x1 - x0), (self.y(p) - y0) / (y1 - y0)


def _clusters(ax, view: _View, ranked: list[ParetoPoint]) -> list[list[ParetoPoint]]:
    """The numbered points grouped where their numbers would overlap, best rank first."""
    groups: list[list[ParetoPoint]] = []
    for p in ranked:
        fx, fy = view.fraction(ax, p)
        for group in groups:
            gx, gy = view.fraction(ax, group[0])
            if abs(fx - gx) < CLOSE[0] and abs(fy - gy) < CLOSE[1]:
                group.append(p)
                break
        else:
            groups.append([p])
    return groups


def _number_top(ax, side, points: list[ParetoPoint], view: _View) -> None:
    """Circle and number the best configurations on the plot (one label for numbers that would
    overlap) and name them in the side panel, with how much slower each is than the first."""
    ranked = sorted((p for p in points if p.rank is not None), key=lambda p: p.rank)
    ranked = ranked[:MAX_LABELLED]
    ax.scatter(
        [view.x(p) for p in ranked],
        [view.y(p) for p in ranked],
        s=90,
        facecolors="none",
        edgecolors=OKABE_ITO["orange"],
        lw=1.5,
        zorder=3,
    )
    for group in _clusters(ax, view, ranked):
        ax.annotate(
            ",".join(str(p.rank) for p in group),
            (view.x(group[0]), view.y(group[0])),
            xytext=(6, 6),
            textcoords="offset points",
            fontsize=8,
            color=OKABE_ITO["black"],
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            zorder=4,
        )
    side.axis("off")
    first = ranked[0].step_time if ranked else 0.0
    lines = [
        _side_line(
            f"{p.rank:>2}  {_step_text(p.step_time):>8}  {_slower(p.step_time, first):>6}  ", p
        )
        for p in ranked
    ]
    side.text(
        0.0,
        1.0,
        "top configurations (circled)\n\n" + "\n".join(lines),
        va="top",
        ha="left",
        family="monospace",
        fontsize=7.5,
        transform=side.transAxes,
    )


SIDE_WIDTH = 66  # characters of the side list that fit beside the plot at 7.5 pt


def _side_line(head: str, p: ParetoPoint) -> str:
    """One ranked configuration; its policies (``rc=``, ``off=``) on a second line, under its
    name, when the line would run past the figure's edge."""
    line = head + p.label
    if len(line) <= SIDE_WIDTH:
        return line
    name, sep, policies = p.label.partition(" rc=")
    if not sep:
        name, sep, policies = p.label.partition(" off=")
    if not sep:
        return line
    return f"{head}{name}\n{' ' * len(head)}{sep.strip()}{policies}"


def _step_text(t: float) -> str:
    """A step time to three significant digits, trailing zeros kept so that the list's column
    reads alike (``33.0 s`` beside ``32.9 s``, where ``human_time`` gives ``33 s``)."""
    factor, name = time_scale(t)
    value = t * factor
    decimals = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0
    return f"{value:.{decimals}f} {name}"


def _slower(t: float, first: float) -> str:
    return f"+{100 * (t / first - 1):.1f}%" if first > 0 else ""
