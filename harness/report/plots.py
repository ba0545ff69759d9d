"""Pictures of what was measured: held sockets, TIME_WAIT and requests in flight
over time, one panel per experiment, faulty and fixed side by side on one scale.

matplotlib is an optional extra (``pip install 'tcp-leak-harness[plots]'``);
without it ``write_plot`` returns None and the caller says how to get plots.
Cost: ~0.2 s to import matplotlib, then ~0.1 s a panel (``python -m harness bench``).
"""
from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..driving import ExperimentResult
from .files import shareable

HOW_TO_GET_PLOTS = "plots need matplotlib: pip install 'tcp-leak-harness[plots]' (or pip install matplotlib)"
_VARIANT = re.compile(r"-(faulty|fixed)(?=$|-)")
PANEL_W, PANEL_H = 5.2, 2.6  # inches per panel
HEADER_H = 0.7  # inches above the panels for the title and the legend
TITLE_H = 0.5  # inches above each panel for its two-line title
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_BOTTOM = 0.6, 0.2, 0.45  # inches: the y label and ticks, air, the x label and ticks
GAP_W = 0.75  # inches between panels side by side: the right one's y label and ticks
MAX_COLUMNS = 6  # panels side by side at most: 6 x 5.2 in at 90 dpi is 2,800 px, a wide screen's width
LEGEND_CHAR_W, LEGEND_HANDLE_W = 0.075, 0.75  # inches: a character at 9 pt (generous), a line's sample and its gaps
LEGEND_ROW_H = 0.25  # inches: one more row of legend at 9 pt
LINE_LABELS = {"held": "held by the client (ESTABLISHED + CLOSE_WAIT)", "time_wait": "TIME_WAIT (churn)",
               "in_flight": "requests in flight"}
SWEEP_LABEL = "sweep: the exact check's burst (off scale)"
COLOURS = {"held": "#c0392b", "time_wait": "#7f8c8d", "in_flight": "#2980b9"}


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def group_pairs(results: Sequence[ExperimentResult]) -> list[list[ExperimentResult]]:
    """Rows of the figure: results whose names differ only in their variant
    (``tcp_count-httpx-faulty-stream`` beside ``tcp_count-httpx-fixed``), faulty first."""
    rows: dict[str, list[ExperimentResult]] = {}
    for result in results:
        match = _VARIANT.search(result.name)
        key = result.name[:match.start()] if match else result.name
        rows.setdefault(key, []).append(result)
    return [sorted(row, key=lambda r: ("fixed" in r.name, r.name)) for row in rows.values()]


def _plain(text: str) -> str:
    """Text as it is: matplotlib reads $...$ as math (a shell command has many)."""
    return text.replace("$", r"\$")


def _title(result: ExperimentResult) -> tuple[str, str]:
    verdict = result.verdict
    word = (verdict.word if verdict and verdict.trend else "checks") if result.complete else "incomplete"
    ok = result.passed
    return _plain(f"{result.name}\n{word}: {'passed' if ok else 'FAILED'}"), "#1e8449" if ok else "#c0392b"


def grid(groups: Sequence[Sequence[ExperimentResult]]) -> list[list[ExperimentResult | None]]:
    """Panels in rows of a grid that stays near square however many experiments there are
    (40 experiments: 6 columns, 7 rows, not one column 40 tall); a group (faulty beside
    fixed) never split across rows. ``None``: an empty cell."""
    panels = sum(len(group) for group in groups)
    widest = max(len(group) for group in groups)
    columns = min(panels, MAX_COLUMNS, math.ceil(math.sqrt(2 * panels)))  # about twice as wide as tall in panels
    columns = max(widest, columns // widest * widest)  # pairs fill rows without a hole
    rows: list[list[ExperimentResult | None]] = [[]]
    for group in groups:
        if len(rows[-1]) + len(group) > columns:
            rows.append([])
        rows[-1].extend(group)
    return [row + [None] * (columns - len(row)) for row in rows]


def _legend_labels(groups) -> list[str]:
    """The legend's labels, longest case: the three lines, and a sweep's band where there is one."""
    labels = list(LINE_LABELS.values())
    if any(s.label == "sweep_start" for group in groups for r in group for s in r.samples):
        labels.append(SWEEP_LABEL)
    return labels


def _legend_shape(labels: Sequence[str], width: float) -> tuple[int, int]:
    """(rows, columns) of a legend that fits ``width`` inches whole: matplotlib gives every
    column the widest entry's width."""
    entry = max(len(label) for label in labels) * LEGEND_CHAR_W + LEGEND_HANDLE_W
    columns = max(1, min(len(labels), int((width - 0.2) // entry)))
    return math.ceil(len(labels) / columns), columns


def write_plot(results: Sequence[ExperimentResult], path: Path, title: str = "") -> Path | None:
    """Write a PNG of ``results`` to ``path`` (atomically); None without matplotlib."""
    try:  # a Figure on the Agg canvas: no pyplot (its import alone costs ~0.2 s), no screen needed
        import matplotlib  # noqa: F401  (first: the package itself decides whether plots are available)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    groups = group_pairs([r for r in results if r.samples])
    if not groups:
        return None
    rows = grid(groups)
    columns = max(len(row) for row in rows)
    legend_rows, legend_columns = _legend_shape(_legend_labels(groups), PANEL_W * columns)
    header_h = HEADER_H + LEGEND_ROW_H * (legend_rows - 1)
    width, height = PANEL_W * columns, PANEL_H * len(rows) + header_h
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), columns, squeeze=False)
    # fixed margins in inches, not tight_layout (which draws the figure once more to measure it: half the cost)
    fig.subplots_adjust(left=MARGIN_LEFT / width, right=1 - MARGIN_RIGHT / width, bottom=MARGIN_BOTTOM / height,
                        top=1 - (header_h + TITLE_H) / height, wspace=GAP_W / (PANEL_W - GAP_W),
                        hspace=(TITLE_H + MARGIN_BOTTOM) / (PANEL_H - TITLE_H - MARGIN_BOTTOM))
    try:
        # each group's scale is the client's own traffic, shared by faulty and fixed: a sweep's burst (shaded)
        # and its churn go past it
        scale = {id(result): (max(max((max(s.held, s.time_wait, s.in_flight) for s in outside_sweeps(r.samples)),
                                      default=1) for r in group), max(r.samples[-1].t for r in group))
                 for group in groups for result in group}
        for r, row in enumerate(rows):
            for c in range(columns):
                ax = axes[r][c]
                if c >= len(row) or row[c] is None:
                    ax.axis("off")
                    continue
                _panel(ax, row[c], *scale[id(row[c])])
        handles, labels = [], []
        for row_axes in axes:  # every kind of line once, from whichever panel has it
            for ax in row_axes:
                for handle, label in zip(*ax.get_legend_handles_labels()):
                    if label not in labels and not label.startswith("held on "):
                        handles.append(handle)
                        labels.append(label)
        if title:
            fig.suptitle(_plain(title), y=1 - 0.08 / height, va="top", fontsize=11)
        fig.legend(handles, labels, loc="upper center", ncol=legend_columns, frameon=False, fontsize=9,
                   bbox_to_anchor=(0.5, 1 - 0.35 / height))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
        shareable(fd)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=90)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    finally:
        fig.clear()
    return path


def sweep_windows(samples) -> list[tuple[float, float]]:
    """(start, end) seconds of each sweep of the exact check, from the samples' labels."""
    windows, start = [], None
    for s in samples:
        if s.label == "sweep_start":
            start = s.t
        elif s.label == "sweep_end" and start is not None:
            windows.append((start, s.t))
            start = None
    return windows


def outside_sweeps(samples):
    """The samples before the first sweep: the client's own traffic (a sweep's churn outlives it)."""
    windows = sweep_windows(samples)
    return [s for s in samples if s.t < windows[0][0]] if windows else list(samples)


def _panel(ax, result: ExperimentResult, top: int, right: float) -> None:
    t = [s.t for s in result.samples]
    ax.plot(t, [s.held for s in result.samples], color=COLOURS["held"], lw=1.8,
            label=LINE_LABELS["held"])
    ax.plot(t, [s.time_wait for s in result.samples], color=COLOURS["time_wait"], lw=1.2, ls="--",
            label=LINE_LABELS["time_wait"])
    ax.step(t, [s.in_flight for s in result.samples], where="post", color=COLOURS["in_flight"], lw=1, alpha=0.8,
            label=LINE_LABELS["in_flight"])
    host_lines = []
    for i, host in enumerate(result.hosts):  # several servers: each host's held sockets, thin
        host_lines += ax.plot(t, [s.held_by_host[i] if len(s.held_by_host) > i else 0 for s in result.samples],
                              lw=0.8, alpha=0.9, label=_plain(f"held on {host.rsplit(':', 1)[0]}"))
    for s in result.samples:
        if s.label == "round_end":
            ax.axvline(s.t, color="#bbbbbb", lw=0.6, zorder=0)
    for i, (start, end) in enumerate(sweep_windows(result.samples)):
        ax.axvspan(start, end, color="#f5cba7", alpha=0.5, lw=0, zorder=0,
                   label=SWEEP_LABEL if i == 0 else None)
        peak = max((s.in_flight for s in result.samples if start <= s.t <= end), default=0)
        if peak > top:
            ax.annotate(f"burst {peak}", xy=((start + end) / 2, top), ha="center", va="top", fontsize=6,
                        color="#a04000")
    if host_lines:
        ax.legend(handles=host_lines, fontsize=6, loc="upper left", frameon=False)
    text, colour = _title(result)
    ax.set_title(text, fontsize=9, color=colour)
    ax.set_ylim(0, max(1, top) * 1.08)  # one scale for the group: faulty and fixed compare at a glance
    ax.set_xlim(0, right)
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel("sockets / requests", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.locator_params(nbins=4)  # 5 ticks a side at most: 40 panels in 1.8 s, not 2.4 (ticks cost matplotlib most)
    ax.grid(alpha=0.25)
