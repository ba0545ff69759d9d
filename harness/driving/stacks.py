"""Where a stalled client waits: its threads' stacks and its pending tasks', grouped.

Read when a drain gives up (``Run.drain``), so that a stall says which line of the
client (or of a library under it) its requests wait on. Costs a walk of every thread's
frames: ~50 us a thread.
"""
from __future__ import annotations

import asyncio
import sys
import sysconfig
import threading
import traceback
from collections.abc import Iterable

STDLIB = sysconfig.get_paths()["stdlib"]
SHOWN_MOST = 4  # the line names at most this many places (largest groups first); the full stacks go to stderr


def _place(frames: traceback.StackSummary) -> str:
    """The innermost frame outside the standard library (where a client's own code, or a library's,
    waits), with the innermost frame after it when that one is the standard library's."""
    if not frames:
        return "no frame"
    inner = frames[-1]
    outside = next((f for f in reversed(frames) if not f.filename.startswith(STDLIB)), inner)
    where = f"{outside.filename}:{outside.lineno} in {outside.name}"
    if outside is not inner:
        where += f" (waiting in {inner.filename.removeprefix(STDLIB + '/')}:{inner.lineno} in {inner.name})"
    return where


def _grouped(stacks: Iterable[tuple[str, traceback.StackSummary]]) -> list[tuple[list[str], traceback.StackSummary]]:
    """(names, stack) per distinct stack, the largest group first."""
    groups: dict[tuple, tuple[list[str], traceback.StackSummary]] = {}
    for name, stack in stacks:
        key = tuple((f.filename, f.lineno, f.name) for f in stack)
        groups.setdefault(key, ([], stack))[0].append(name)
    return sorted(groups.values(), key=lambda group: -len(group[0]))


def thread_stacks() -> list[tuple[str, traceback.StackSummary]]:
    """(name, stack) of every thread of this process but the caller's."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    return [(names.get(ident, f"thread {ident}"), traceback.extract_stack(frame))
            for ident, frame in sys._current_frames().items() if ident != me]


def task_stacks(tasks: Iterable[asyncio.Task]) -> list[tuple[str, traceback.StackSummary]]:
    """(name, stack) of each task not done, at the line it awaits (read from another thread: a
    loop that is stalled does not change them; one that is not may, and is read as it stands)."""
    stacks = []
    for task in list(tasks):
        if task.done():
            continue
        frames = task.get_stack()
        stacks.append((task.get_name(), traceback.StackSummary.extract((f, f.f_lineno) for f in frames)))
    return stacks


def where_they_wait(stacks: list[tuple[str, traceback.StackSummary]], what: str) -> tuple[str, str]:
    """A line naming where the largest groups wait (``what``: "threads", "tasks") and the full
    stacks, one per group, for stderr."""
    groups = _grouped(stacks)
    if not groups:
        return f"no {what}", ""
    shown = [f"{len(names)} ({names[0]}{', ...' if len(set(names)) > 1 else ''}) at {_place(stack)}"
             for names, stack in groups[:SHOWN_MOST]]
    if len(groups) > SHOWN_MOST:
        shown.append(f"{sum(len(names) for names, _ in groups[SHOWN_MOST:])} elsewhere")
    full = "\n".join(f"{len(names)} {what} ({', '.join(sorted(set(names))[:5])}{', ...' if len(set(names)) > 5 else ''}):\n"
                     + "".join(stack.format()) for names, stack in groups)
    return f"{what}: " + "; ".join(shown), full
