"""What one experiment measured and concluded: ``ExperimentResult``, and one
dataclass for each kind of figures a scenario produces.

The JSON keys (``as_dict``) are those of ``results/README.md``. Figures can also
be read as a mapping (``result.figures["requests"]``), as code written for the
untyped figures of earlier versions does.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields

from ..judging import Check, Verdict
from ..sampling import ClientSocket, Sample, format_sockets

OMIT_IF_NONE = {"omit_if_none": True}  # a key written only when it has a value (several hosts only, say)


@dataclass
class Figures:
    """The figures of one experiment; the base of every kind."""

    def as_dict(self) -> dict:
        data = asdict(self)
        for f in fields(self):
            if f.metadata.get("omit_if_none") and data[f.name] is None:
                del data[f.name]
        return data

    def __getitem__(self, key: str):
        if key not in {f.name for f in fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default=None):
        try:
            return self[key]
        except KeyError:
            return default


@dataclass
class Tally(Figures):
    """Requests the driver sent, and how they ended."""

    requests: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # exception type name: count
    first_error: str | None = None
    peak_in_flight: int = 0  # the most requests in flight at once


@dataclass
class Churn(Figures):
    """New connections the server accepted, and TIME_WAIT sockets left: churn, never a leak."""

    new_connections: int = 0
    new_connections_per_request: float = 0.0
    time_wait: int = 0
    time_wait_per_request: float = 0.0
    hung_up_early: int = 0  # requests the client gave up on before their answer (server's count)

    @staticmethod
    def per_request(count: int, requests: int) -> float:
        """The one way churn is put per request: 4 decimals, 0 when nothing was requested."""
        return round(count / requests, 4) if requests else 0.0


@dataclass
class RoundsFigures(Tally, Churn):
    """``tcp_count``: held sockets after each round of the schedule."""

    residuals: list[int] = field(default_factory=list)  # ESTABLISHED + CLOSE_WAIT after each round
    max_established: int = 0
    exact_check: str = ""  # "on", or why the sweeps did not run
    sweep_requests: int = 0  # sent by the sweeps, beyond the rounds' requests (and their churn)
    sweep_failed: int = 0  # of those, failed: each proves nothing of its socket (not in ``failed``, the rounds')
    sweep_errors: dict[str, int] = field(default_factory=dict)  # the sweeps' failures: exception type name: count
    abandoned: list[dict] | None = None  # each socket proved abandoned: local_port, state, idle_ms; None: no sweep
    residuals_by_host: dict[str, list[int]] | None = field(default=None, metadata=OMIT_IF_NONE)
    verdict_by_host: dict[str, str] | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass
class PersistentFigures(Tally, Churn):
    """``persistent_connections``: one request at a time."""

    persistent: bool = False  # fewer new connections than requests


@dataclass
class IdleFigures(Tally, Churn):
    """``idle_handling``: idle sockets after a burst, watched with no traffic. Seconds."""

    idle_before: int = 0
    idle_after: int = 0
    window_s: float = 0.0
    idle_timeout_s: float = 0.0
    closed_after_s: float | None = None  # None: not all closed within the window


@dataclass
class CloseOnErrorFigures(Tally, Churn):
    """``close_on_error``: idle sockets before and after a failed request."""

    failure: str = ""
    idle_before: int = 0
    after_error: int = 0


@dataclass
class HangFigures(Tally):
    """``hang``: requests the server never answers."""

    hung_requests: int = 0
    still_in_flight: int = 0
    held: int = 0
    window_s: float = 0.0


@dataclass
class StopAcceptingFigures(Tally):
    """``stop_accepting``: the server closes its listener part-way."""

    held: int = 0


@dataclass
class CommandFigures(Churn):
    """``command``: a program running its own loop, judged from its time series. Seconds."""

    command: str = ""
    exit_status: int | None = None
    stopped_by_harness: bool = False
    ran_s: float = 0.0
    requests: int = 0  # counted by the server
    requests_per_s: float = 0.0
    peak_held: int = 0
    peak_in_flight: int = 0  # the server's most requests in flight at once, a connection's from its accept
    time_wait_per_s: float = 0.0
    stdout_tail: str = ""
    stderr_tail: str = ""
    extended: bool = False  # undecided at --duration, so sampled longer (harness.judging.sample_longer)
    floors: list[int] = field(default_factory=list)
    # held sockets at the end, oldest idle first (local_port, state, idle_ms from tcp_info): evidence, not a
    # verdict; None when the command had ended (its sockets with it) or the sampler cannot read tcp_info
    idle_ages: list[dict] | None = None


@dataclass
class WatchFigures(Figures):
    """``watch``: a running process's held sockets, by remote endpoint. Seconds."""

    pid: int = 0
    ran_s: float = 0.0
    samples: int = 0
    endpoints: dict[str, dict] = field(default_factory=dict)  # endpoint: verdict, reason, floors, peak_held


@dataclass
class ExperimentResult:
    """Everything one experiment measured and concluded; written as JSON + CSV
    by the report (``harness.report``)."""

    name: str
    scenario: str
    target: str
    settings: dict
    verdict: Verdict | None = None
    schedule: dict | None = None
    figures: Figures = field(default_factory=Figures)
    rounds: list[dict] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    sockets_left: list[ClientSocket] = field(default_factory=list)
    sites: dict[int, str] = field(default_factory=dict)  # local port: where it was opened (harness.sampling.sites)
    complete: bool = False
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    duration_s: float = 0.0
    server_stderr: str = ""
    server: dict = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)  # HOST:PORT of each server, when there are several

    @property
    def passed(self) -> bool:
        return self.complete and self.verdict is not None and self.verdict.passed

    @property
    def trend_verdict(self) -> str | None:
        """growth, plateau or undecided (the trend's, or growth when sweeps proved a socket
        abandoned); None when no trend was judged."""
        return self.verdict.word if self.verdict else None

    def explain(self) -> str:
        """A failure message in goleak's manner: what failed, by how much, which sockets."""
        if not self.complete:
            return f"{self.name}: incomplete: {self.error}"
        lines = [f"{self.name}: {self.verdict.summary if self.verdict else 'no verdict'}"]
        lines += [f"  {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        if self.sockets_left:
            lines.append("sockets to the server at the end:")
            lines.append(format_sockets(self.sockets_left, self.sites))
        return "\n".join(lines)

    @property
    def checks(self) -> list[Check]:
        return list(self.verdict.checks) if self.verdict else []

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "scenario": self.scenario,
            "target": self.target,
            "complete": self.complete,
            "error": self.error,
            "passed": self.passed,
            "verdict": self.trend_verdict,
            "summary": self.verdict.summary if self.verdict else None,
            "judgement": self.verdict.as_dict() if self.verdict else None,
            "requests": self.figures.get("requests", 0),
            "figures": self.figures.as_dict(),
            "settings": self.settings,
            "schedule": self.schedule,
            "rounds": self.rounds,
            "sockets_left": [{"local_port": p, "state": s, "site": self.sites.get(p)} for p, s in self.sockets_left],
            "server": self.server,
            "hosts": self.hosts,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "samples": [s.as_dict() for s in self.samples],
        }
