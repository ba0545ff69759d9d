"""Many deadlines of one length on one event-loop timer.

Every connection the slow server accepts gets two deadlines: it counts as connecting for
``CONNECTING_S`` at most, and must send a whole request head within the header timeout.
As loop timers they cost ~1.3 KB a connection under uvloop (tracemalloc: ~550 and ~720
bytes, six objects each), nearly half of what an idle connection costs; an entry here costs
~80 bytes (a two-slot object, its float and a place in a deque). The deadlines of one queue
are all as long, so they fall due in the order they were set: a FIFO queue, not a heap, and
one loop timer, set for the earliest.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")

# Cancelled entries stay queued until they reach the front; past this many, and more than half the queue, they
# are swept out (O(n), so at most once every COMPACT_AT cancels): a queue never holds more than ~2x its live
# entries + COMPACT_AT (~80 KB), however long the deadline and however many connections come and go.
COMPACT_AT = 1024
# What counts as due: uvloop's timers count whole milliseconds, so the loop timer may wake up to ~0.5 ms before the
# earliest deadline; 1 ms early is nothing against deadlines of a second or more, and never spins the loop.
DUE_SLACK_S = 0.001


class Deadline(Generic[Item]):
    """One entry: when it falls due (loop time, s) and what for (None once cancelled or expired)."""

    __slots__ = ("due", "item")

    def __init__(self, due: float, item: Item | None) -> None:
        self.due = due
        self.item = item


class Deadlines(Generic[Item]):
    """Calls ``expire(item)`` ``after_s`` seconds after ``add(item)``, unless ``cancel``\\ ed first,
    on the running event loop. ``expire`` may add and cancel deadlines."""

    def __init__(self, after_s: float, expire: Callable[[Item], None]) -> None:
        self.after_s = after_s
        self.expire = expire
        self._queue: deque[Deadline[Item]] = deque()
        self._cancelled = 0  # entries in the queue whose item is None
        self._timer: asyncio.TimerHandle | None = None  # set whenever the queue holds entries, outside _run
        self._running = False

    def __len__(self) -> int:
        """Deadlines pending."""
        return len(self._queue) - self._cancelled

    def add(self, item: Item) -> Deadline[Item]:
        """``item``'s deadline, ``after_s`` from now; ~0.5 us."""
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop.time() + self.after_s, item)
        self._queue.append(deadline)
        if self._timer is None and not self._running:
            self._timer = loop.call_at(deadline.due, self._run)
        return deadline

    def cancel(self, deadline: Deadline[Item]) -> None:
        """``deadline`` will not expire; nothing if it did already or was cancelled."""
        if deadline.item is None:
            return
        deadline.item = None
        self._cancelled += 1
        if self._cancelled >= COMPACT_AT and self._cancelled * 2 > len(self._queue):
            self._queue = deque(entry for entry in self._queue if entry.item is not None)
            self._cancelled = 0

    def close(self) -> None:
        """Nothing more expires (the server stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for entry in self._queue:
            entry.item = None  # a cancel that comes after (a connection closing) finds nothing to do
        self._queue.clear()
        self._cancelled = 0

    def _run(self) -> None:
        self._timer = None
        self._running = True
        loop = asyncio.get_running_loop()
        queue = self._queue
        try:
            now = loop.time() + DUE_SLACK_S
            while queue:
                entry = queue[0]
                if entry.item is None:
                    queue.popleft()
                    self._cancelled -= 1
                    continue
                if entry.due > now:
                    break
                queue.popleft()
                item, entry.item = entry.item, None
                self.expire(item)
                queue = self._queue  # expire may have cancelled enough to sweep the queue into a new one
        finally:
            self._running = False
            if self._queue and self._timer is None:
                self._timer = loop.call_at(self._queue[0].due, self._run)
