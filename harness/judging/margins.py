"""The verdicts' words and the margins both verdicts share: their one home.

Both the verdict by rounds (``rounds.py``) and the verdict from a time series
(``series.py``) tell a pool from a leak with these numbers.
"""
from __future__ import annotations

GROWTH = "growth"  # the client keeps more sockets the more requests it makes: a leak
PLATEAU = "plateau"  # the client keeps at most what its busiest moment needed: a pool
UNDECIDED = "undecided"  # not enough evidence yet: run longer
VERDICTS = (GROWTH, PLATEAU)  # what a user may expect

# A rise of the kept sockets that the peak in flight does not explain: under
# scheduling jitter a round can meet one or two more concurrent connections than
# the peak counter saw (a request counts as done a moment after its socket went
# back to the pool), and a pool keeps them. Healthy pools measured: <= 2.
PLATEAU_MAX_RISE = 2
# Leaks measured ended >= 5 sockets above the peak in flight; healthy pools <= 2.
# 5 leaves a margin of 2 on both sides of that gap.
GROWTH_MIN_EXCESS = 5
