"""The server: the slow HTTP server (protocol), its faults on purpose, HTTPS (tls), and the
launcher that runs it as a child process and reads its counters.

Never imports the clients, sampling, judging, the runner, the report or a face;
``python -m harness.server`` starts with this package alone.
"""
from .faults import FAULTS, KNOBS, Fault, Faults, Knob, fault_args
from .process import STARTED, ServerError, ServerProcess
from .protocol import STATS_GAUGES
from .tls import Certificates

__all__ = ["Certificates", "FAULTS", "KNOBS", "STARTED", "STATS_GAUGES", "Fault", "Faults", "Knob", "ServerError",
           "ServerProcess", "fault_args"]
