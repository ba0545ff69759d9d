"""One experiment's picture as SVG text, for the HTML report: held sockets, TIME_WAIT and
requests in flight over time, round ends as lines, the exact check's sweeps shaded.

Drawn here rather than by matplotlib: an SVG of a few polylines costs ~1 ms an experiment
(a matplotlib figure ~0.1 s) and needs nothing installed, so the report has every picture
even with ``--plots off`` or without the plots extra.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from ..sampling import Sample
from .plots import COLOURS, LINE_LABELS, outside_sweeps, sweep_windows

WIDTH, HEIGHT = 640, 250  # px of the whole picture
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 34  # px: y ticks and label, air, the legend, x ticks and label
DASHES = {"time_wait": "5,3"}  # the PNG's dashed TIME_WAIT line


def _ticks(top: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values from 0 up to ``top``: steps of 1, 2 or 5 times a power of ten."""
    raw = max(top, 1e-6) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [round(i * step, 9) for i in range(int(top / step + 1e-9) + 1)]


def experiment_svg(samples: Sequence[Sample], title: str = "") -> str | None:
    """The picture of ``samples`` (seconds on x, sockets and requests on y); None without samples.
    The y scale is the client's own traffic: a sweep's burst goes past it, as in the PNGs."""
    if not samples:
        return None
    right = max(samples[-1].t, 1e-3)
    top = max(1, max(max(s.held, s.time_wait, s.in_flight) for s in outside_sweeps(samples)))
    y_ticks = _ticks(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + plot_w * t / right

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, top * 1.08) / (top * 1.08))

    def line(values: list[float], colour: str, width: float, dash: str = "", steps: bool = False) -> str:
        points = []
        for i, s in enumerate(samples):
            if steps and i:
                points.append(f"{x(s.t):.1f},{y(values[i - 1]):.1f}")
            points.append(f"{x(s.t):.1f},{y(values[i]):.1f}")
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        return (f'<polyline fill="none" stroke="{colour}" stroke-width="{width}"{dashes} '
                f'points="{" ".join(points)}"/>')

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="10">',
             f'<title>{escape(title)}</title>', f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>']
    for start, end in sweep_windows(samples):
        parts.append(f'<rect x="{x(start):.1f}" y="{TOP}" width="{max(1.0, x(end) - x(start)):.1f}" '
                     f'height="{plot_h}" fill="#f5cba7" opacity="0.5"/>')
    for value in y_ticks:
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#e5e5e5"/><text x="{LEFT - 4}" y="{y(value) + 3:.1f}" text-anchor="end">{value:g}</text>')
    for value in _ticks(right):
        parts.append(f'<text x="{x(value):.1f}" y="{TOP + plot_h + 13}" text-anchor="middle">{value:g}</text>')
    for s in samples:
        if s.label == "round_end":
            parts.append(f'<line x1="{x(s.t):.1f}" x2="{x(s.t):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#bbbbbb"/>')
    parts.append(line([s.time_wait for s in samples], COLOURS["time_wait"], 1.2, DASHES["time_wait"]))
    parts.append(line([s.in_flight for s in samples], COLOURS["in_flight"], 1, steps=True))
    parts.append(line([s.held for s in samples], COLOURS["held"], 2))
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    parts.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle">seconds</text>')
    parts.append(f'<text transform="translate(11 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 'sockets / requests</text>')
    legend_x = LEFT
    for key, label in LINE_LABELS.items():
        dashes = f' stroke-dasharray="{DASHES[key]}"' if key in DASHES else ""
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="12" y2="12" stroke="{COLOURS[key]}" '
                     f'stroke-width="2"{dashes}/><text x="{legend_x + 22}" y="15">{escape(label)}</text>')
        legend_x += 30 + int(5.6 * len(label))  # px a character at 10 px sans-serif, near enough for spacing
    parts.append("</svg>")
    return "".join(parts)
