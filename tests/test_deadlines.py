"""``Deadlines``: many deadlines of one length on one loop timer expire in order, each no
sooner than its length after it was set, never once cancelled, on either event loop; and
cancelled entries do not pile up."""
from __future__ import annotations

import asyncio

import pytest

from harness.server.deadlines import COMPACT_AT, DUE_SLACK_S, Deadlines

from .server_loops import LOOPS, run_on

AFTER_S = 0.05  # short, so a test waits little
WAIT_S = 5.0  # for the expiries: 0.05 s each, and a loaded machine's scheduling on top
# Loop times are floats of ~1e5 s (uvloop's whole milliseconds /1000): a difference of two carries ~1e-11 s of
# rounding, so a deadline that expired exactly DUE_SLACK_S early can read a hair earlier (a CI run: 0.04899999999907).
FLOAT_NOISE_S = 1e-9


@pytest.mark.parametrize("loop_name", LOOPS)
def test_each_expires_in_order_after_its_length_unless_cancelled(loop_name):
    async def scenario() -> tuple[list, list, int]:
        loop = asyncio.get_running_loop()
        expired: list[tuple[str, float]] = []
        last = asyncio.Event()
        deadlines: Deadlines[str] = Deadlines(AFTER_S, lambda item: (expired.append((item, loop.time())),
                                                                      item == "last" and last.set()))
        set_at = {}
        entries = {}
        for name in ("a", "b", "cancelled", "c"):  # set in one go: nothing can expire before the checks below
            set_at[name] = loop.time()
            entries[name] = deadlines.add(name)
        deadlines.cancel(entries["cancelled"])
        deadlines.cancel(entries["cancelled"])  # twice: nothing more
        pending = len(deadlines)
        set_at["last"] = loop.time()
        deadlines.add("last")
        await asyncio.wait_for(last.wait(), WAIT_S)
        deadlines.cancel(entries["a"])  # after it expired: nothing
        late = [(name, at - set_at[name]) for name, at in expired]
        return late, list(set_at), pending

    late, names, pending = run_on(loop_name, scenario())
    assert pending == 3
    assert [name for name, _ in late] == [n for n in names if n != "cancelled"]
    for name, after in late:
        assert after >= AFTER_S - DUE_SLACK_S - FLOAT_NOISE_S, f"{name} expired {after:.4f} s after it was set"


@pytest.mark.parametrize("loop_name", LOOPS)
def test_an_expiry_may_set_another_deadline(loop_name):
    """A connection's expiry may start its next deadline: the queue's timer must be set again for it, and the
    new deadline waits its whole length, though it was set while the queue was expiring."""
    async def scenario() -> list[tuple[int, float]]:
        loop = asyncio.get_running_loop()
        rounds: list[tuple[int, float]] = [(0, loop.time())]
        done = asyncio.Event()

        def expire(n: int) -> None:
            rounds.append((n, loop.time()))
            if n < 3:
                deadlines.add(n + 1)
            else:
                done.set()

        deadlines: Deadlines[int] = Deadlines(AFTER_S, expire)
        deadlines.add(1)
        await asyncio.wait_for(done.wait(), WAIT_S)
        return rounds

    rounds = run_on(loop_name, scenario())
    assert [n for n, _ in rounds] == [0, 1, 2, 3]
    for (_, before), (n, at) in zip(rounds, rounds[1:]):
        assert at - before >= AFTER_S - DUE_SLACK_S - FLOAT_NOISE_S, f"deadline {n} expired {at - before:.4f} s after it was set"


def test_cancelled_entries_are_swept_and_close_ends_every_expiry():
    async def scenario() -> tuple[int, int, list]:
        expired: list[int] = []
        deadlines: Deadlines[int] = Deadlines(3600.0, expired.append)
        live = [deadlines.add(i) for i in range(10)]
        for i in range(10 * COMPACT_AT):  # connections that come and go, each cancelling its deadline
            deadlines.cancel(deadlines.add(i))
        queued = len(deadlines._queue)
        pending = len(deadlines)
        deadlines.close()
        for entry in live:
            deadlines.cancel(entry)  # connections closing after the server stopped: nothing to do
        return queued, pending, expired

    queued, pending, expired = asyncio.run(scenario())
    assert pending == 10
    assert queued <= 2 * 10 + COMPACT_AT, f"{queued} entries queued for 10 live ones"
    assert expired == []
