"""The server: the slow HTTP server (protocol), its faults on purpose, HTTPS (tls), the
launcher that runs it as a child process and reads its counters (process), and the
forker that makes those starts cheap for a process that starts many (forker).

Never imports the clients, sampling, judging, the runner, the report or a face;
``python -m harness.server`` starts with this package alone.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:
    from .faults import FAULTS, KNOBS, Fault, Faults, Knob, fault_args
    from .forker import stop_forker, use_forker
    from .process import STARTED, ServerError, ServerProcess
    from .protocol import STATS_GAUGES
    from .tls import Certificates

# Each name is imported from its module when first asked for: ``python -m harness.server`` needs neither the
# launcher (process: subprocess, threading, http.client) nor HTTPS (tls), ~40 ms of CPU at every server's start.
HOMES = {"FAULTS": "faults", "KNOBS": "faults", "Fault": "faults", "Faults": "faults", "Knob": "faults",
         "fault_args": "faults", "STARTED": "process", "ServerError": "process", "ServerProcess": "process",
         "STATS_GAUGES": "protocol", "Certificates": "tls", "use_forker": "forker", "stop_forker": "forker"}


__getattr__ = lazy_names(__name__, HOMES, globals())

__all__ = ["Certificates", "FAULTS", "KNOBS", "STARTED", "STATS_GAUGES", "Fault", "Faults", "Knob", "ServerError",
           "ServerProcess", "fault_args", "stop_forker", "use_forker"]
