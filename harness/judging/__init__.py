"""Judging: verdicts and checks as pure functions of measured numbers.

Never imports an I/O library (os, socket, psutil, subprocess, json, pathlib) nor
any other part of the harness: what it judges is handed to it as numbers.
"""
from .abandoned import (
    FAILED,
    FEWER_THAN_HELD,
    PARTIAL,
    AbandonedSocket,
    Sweeps,
    abandoned_through,
    judge_runs,
    judge_sweeps,
    sweep_size,
)
from .checks import (
    Check,
    Verdict,
    check_at_most,
    check_bounded,
    check_equals,
    check_never_falls,
    churn_gate,
    combine,
)
from .margins import GROWTH, GROWTH_MIN_EXCESS, PLATEAU, PLATEAU_MAX_RISE, UNDECIDED, VERDICTS
from .rounds import Trend, judge_trend
from .series import EXTEND_FRACTION, SeriesTrend, Slope, judge_series, sample_longer, theil_sen

__all__ = [
    "GROWTH", "GROWTH_MIN_EXCESS", "PLATEAU", "PLATEAU_MAX_RISE", "UNDECIDED", "VERDICTS",
    "AbandonedSocket", "Check", "SeriesTrend", "Slope", "Sweeps", "Trend", "Verdict",
    "FAILED", "FEWER_THAN_HELD", "PARTIAL", "abandoned_through", "judge_runs", "judge_sweeps", "sweep_size",
    "check_at_most", "check_bounded", "check_equals", "check_never_falls", "churn_gate", "combine",
    "EXTEND_FRACTION", "judge_series", "judge_trend", "sample_longer", "theil_sen",
]
