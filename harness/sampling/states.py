"""TCP states as every backend names them (psutil's names), and which count as held."""
from __future__ import annotations

ESTABLISHED = "ESTABLISHED"
TIME_WAIT = "TIME_WAIT"
CLOSE_WAIT = "CLOSE_WAIT"
SYN_SENT = "SYN_SENT"
# Held: the client has not closed it. A CLOSE_WAIT socket was closed by the server
# but its file descriptor is still open in the client: held as surely as an
# ESTABLISHED one. TIME_WAIT belongs to no process: churn, never a leak.
HELD_STATES = (ESTABLISHED, CLOSE_WAIT)
# Closed by the client, on their way to TIME_WAIT (psutil and netlink name them alike)
TOWARD_TIME_WAIT = ("FIN_WAIT1", "FIN_WAIT2", "CLOSING", TIME_WAIT)
