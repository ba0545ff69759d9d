"""Driving: a client under test sent requests (a schedule replayed by threads, or
a command running its own loop) while a recorder samples its sockets; the
wiring (``Run``), and the typed result a scenario fills in.

Never imports the scenarios, the runner, the report or a face.
"""
from .command import CommandProcess, ServerInFlight, fill, talks_to_the_server
from .driver import Driver, InFlight
from .result import (
    Churn,
    CloseOnErrorFigures,
    CommandFigures,
    ExperimentResult,
    Figures,
    HangFigures,
    IdleFigures,
    PersistentFigures,
    RoundsFigures,
    StopAcceptingFigures,
    Tally,
    WatchFigures,
)
from .run import ExperimentError, Progress, Run
from .schedule import Schedule, make_schedule

__all__ = [
    "Churn", "CloseOnErrorFigures", "CommandFigures", "CommandProcess", "Driver", "ExperimentError",
    "ExperimentResult", "Figures", "HangFigures", "IdleFigures", "InFlight", "PersistentFigures", "Progress",
    "RoundsFigures", "Run", "Schedule", "ServerInFlight", "StopAcceptingFigures", "Tally", "WatchFigures", "fill", "make_schedule", "talks_to_the_server",
]
