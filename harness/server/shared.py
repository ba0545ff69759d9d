"""What the worker processes of one slow server share (``--workers N``, ``workers.py``):
the counters of ``/stats``, the ``/hold`` barrier, the TLS handshakes to stall, the count
of requests the every-N-th fault goes by, and whether the server still accepts.

All of it lives in one anonymous shared mapping made before the workers are forked:

* a **row of counters per worker** (every ``ServerStats`` field, then each fault's), written
  only by its own worker, so without a lock. ``/stats`` sums the rows; a peak (the most in
  flight at once) is the largest sum any worker saw when one of its own requests started.
  Of two requests that start together in two workers, the later to read the rows sees the
  other's count (a count's write and the reads after it are ~1 us apart in Python, a
  store's way to the other core takes nanoseconds). A barrier's count (``/hold``) is taken
  under the lock.
* a **control block**: the barrier (a generation, ``until``, its deadline on
  ``time.monotonic``, ``then``, reached or not), the handshakes to stall, the requests
  started and whether the server accepts; changed under a lock (a pipe holding one byte:
  ~2 us a change, uncontended) and announced with a **doorbell** (a pipe per worker, read
  on its event loop): a barrier set, reached, or the listeners closing.

A value is a signed 64-bit integer; a row is a ctypes structure over the mapping, so its
reads and writes are single aligned loads and stores (~0.07 us a ``+= 1``, a plain
attribute ~0.03; through ``__getattr__`` it was ~0.56 us, and cost the workers most of
their gain).
"""
from __future__ import annotations

import ctypes
import mmap
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .faults import COUNTERS

SLOT_BYTES = 8
NO_THEN = -1  # the barrier's ``then`` when the delay applies
# the control block's slots
(GENERATION, UNTIL, DEADLINE_NS, THEN_NS, REACHED, ACCEPTING, STALL, STARTED) = range(8)
CONTROL_SLOTS = 8
PEAKS = ("peak_active_requests", "peak_in_flight")  # the largest of the rows, not their sum
FAULT_PREFIX = "fault_"  # a fault's counter in a row: fault_resets_sent, ...


def row_fields(stats_fields: tuple[str, ...]) -> tuple[str, ...]:
    """The integer fields of a row: ``ServerStats``' own (``stats_fields``, in order; not
    ``accepting``, which is shared, nor ``faults``), then each fault's counter."""
    return tuple(name for name in stats_fields if name not in ("accepting", "faults")) \
        + tuple(FAULT_PREFIX + name for name in COUNTERS)


class Shared:
    """The mapping, the lock and the doorbells of ``workers`` processes; made by worker 0 (the
    process started) before it forks the others, used by each worker after (``for_worker``)."""

    def __init__(self, workers: int, stats_fields: tuple[str, ...]) -> None:
        """``stats_fields``: ``ServerStats``' fields, in order (``protocol.STATS_FIELDS``)."""
        self.workers = workers
        self.stats_fields = stats_fields
        self.fields = row_fields(stats_fields)
        self.row_type: type[WorkerStats] = type("WorkerRow", (WorkerStats,), {
            "_fields_": [(name, ctypes.c_int64) for name in self.fields]})
        width = ctypes.sizeof(self.row_type)
        self._map = mmap.mmap(-1, CONTROL_SLOTS * SLOT_BYTES + workers * width)  # MAP_SHARED | MAP_ANONYMOUS
        self.control = memoryview(self._map)[:CONTROL_SLOTS * SLOT_BYTES].cast("q")
        self.rows = [self.row_type.from_buffer(self._map, CONTROL_SLOTS * SLOT_BYTES + i * width)
                     for i in range(workers)]
        self.control[ACCEPTING] = 1
        self._lock_read, self._lock_write = os.pipe()
        os.write(self._lock_write, b"\0")  # the one byte: whoever reads it holds the lock
        self.doorbells = [os.pipe() for _ in range(workers)]
        for read_end, write_end in self.doorbells:
            os.set_blocking(read_end, False)
            os.set_blocking(write_end, False)
        self.me = -1  # this process's worker number, once forked (for_worker)

    def for_worker(self, me: int) -> None:
        """In worker ``me`` after the fork: keep its own doorbell's read end, the others' write ends."""
        self.me = me
        for i, (read_end, write_end) in enumerate(self.doorbells):
            os.close(write_end if i == me else read_end)

    @property
    def doorbell(self) -> int:
        """This worker's doorbell: readable when another worker changed the control block."""
        return self.doorbells[self.me][0]

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Every worker's lock on the control block (held for microseconds: no loop waits long)."""
        os.read(self._lock_read, 1)
        try:
            yield
        finally:
            os.write(self._lock_write, b"\0")

    def ring(self) -> None:
        """Wake every other worker to read the control block again."""
        for i, (_, write_end) in enumerate(self.doorbells):
            if i != self.me:
                try:
                    os.write(write_end, b"!")
                except BlockingIOError:  # its pipe is full of rings it has not read: it will wake anyway
                    pass

    def answer_doorbell(self) -> None:
        """Empty this worker's doorbell (before reading the control block)."""
        try:
            while os.read(self.doorbell, 4096):
                pass
        except BlockingIOError:
            pass

    def total(self, name: str) -> int:
        """A counter summed over every worker's row."""
        return sum(getattr(row, name) for row in self.rows)

    def totals(self) -> dict[str, int]:
        """Every counter of the server: sums, and the peaks' largest row."""
        out = {}
        for name in self.fields:
            values = [getattr(row, name) for row in self.rows]
            out[name] = max(values) if name in PEAKS else sum(values)
        return out

    def stats(self) -> WorkerStats:
        """This worker's row, as its ServerStats (after ``for_worker``)."""
        row = self.rows[self.me]
        row.shared = self
        row.faults = _FaultRow(row)
        return row

    # the barrier (/hold) ---------------------------------------------------------------------------------------

    def set_hold(self, until: int, most_s: float, then_s: float | None) -> int:
        """Announce a barrier set by this worker; returns its generation."""
        with self.lock():
            control = self.control
            control[GENERATION] += 1
            control[UNTIL] = until
            control[DEADLINE_NS] = time.monotonic_ns() + int(most_s * 1e9)
            control[THEN_NS] = NO_THEN if then_s is None else int(then_s * 1e9)
            control[REACHED] = 0
            generation = control[GENERATION]
            for row in self.rows:  # only the latest barrier's miss is told: its owner's row alone holds it
                row.in_flight_at_miss = 0
        self.ring()
        return generation

    def reach_hold(self, generation: int, until: int) -> bool:
        """Under the lock: True if barrier ``generation`` has ``until`` requests in flight now and
        was not reached before (this worker reached it: it counts it and rings)."""
        with self.lock():
            if self.control[GENERATION] != generation or self.control[REACHED]:
                return False
            if self.total("active_requests") < until:
                return False
            self.control[REACHED] = 1
        self.ring()
        return True


class WorkerStats(ctypes.Structure):
    """A worker's ``ServerStats``: the same attributes, each a 64-bit field of its row in the
    shared mapping (a ctypes structure over it: ~0.07 us a ``+= 1``, as a plain attribute
    ~0.03), ``faults`` a mapping onto the same row; ``as_dict`` is the whole server's.
    Its fields are set by ``Shared`` (``row_type``); made by ``Shared.stats``."""

    shared: Shared
    faults: _FaultRow

    @property
    def accepting(self) -> bool:
        return bool(self.shared.control[ACCEPTING])

    @accepting.setter
    def accepting(self, value: bool) -> None:
        self.shared.control[ACCEPTING] = int(value)

    def total(self, name: str) -> int:
        return self.shared.total(name)

    def note_in_flight(self) -> None:
        """A request of this worker started: each peak is the largest sum it has seen."""
        active = connecting = 0
        for row in self.shared.rows:
            active += row.active_requests
            connecting += row.connecting
        if active > self.peak_active_requests:
            self.peak_active_requests = active
        if active + connecting > self.peak_in_flight:
            self.peak_in_flight = active + connecting

    def as_dict(self) -> dict:
        totals = self.shared.totals()
        out: dict = {}
        for name in self.shared.stats_fields:  # in ServerStats.as_dict's order
            if name == "accepting":
                out["accepting"] = self.accepting
            elif name != "faults":
                out[name] = totals[name]
        out.update({name: totals[FAULT_PREFIX + name] for name in COUNTERS})
        return out


class _FaultRow:
    """``stats.faults[name]`` of a worker: its row's fault counters."""

    __slots__ = ("row",)

    def __init__(self, row: WorkerStats) -> None:
        self.row = row

    def __getitem__(self, name: str) -> int:
        return getattr(self.row, FAULT_PREFIX + name)

    def __setitem__(self, name: str, value: int) -> None:
        setattr(self.row, FAULT_PREFIX + name, value)
