"""tcp-leak-harness: reproduce, measure, locate and gate TCP connection leaks in
HTTP clients.

The flow, one package each: ``server`` (the slow server, its faults, its
launcher) -> ``clients`` (the catalog of faulty and fixed variants) ->
``sampling`` (sockets read from the kernel) -> ``judging`` (verdicts, pure) ->
``driving`` (a client driven while sampled; the typed result) -> ``scenarios``
(the experiments the harness knows) -> ``runner`` (one function runs one
``Experiment``) -> ``report`` (files, table, pictures) -> ``faces`` (the CLI and
the pytest plugin).

The public API is importable from here; it loads lazily, so that
``python -m harness.server`` starts without the HTTP client libraries.
"""
from __future__ import annotations

from .lazy import lazy_names

_PUBLIC = {
    # the runner
    "Experiment": "runner", "ExperimentSpecError": "runner", "run": "runner",
    "measured_so_far": "runner",
    # results and settings
    "ExperimentResult": "driving", "ExperimentError": "driving", "Settings": "options",
    "override": "options",
    # verdicts
    "GROWTH": "judging", "PLATEAU": "judging",
    # the catalog
    "VARIANTS": "clients", "CATALOG": "clients", "BUILTIN_NAMES": "clients", "expectation": "clients",
    "FixedClient": "clients", "FaultyClient": "clients", "fixed_settings_for": "clients",
    # the scenarios' own numbers, and idle caps across hosts
    "SCENARIOS": "scenarios", "HANG_EVERY": "scenarios", "STOP_AFTER": "scenarios", "WARM_UP_REQUESTS": "scenarios",
    "default_expectation": "scenarios", "idle_across_hosts": "scenarios",
    # servers
    "ServerProcess": "server", "FAULTS": "server", "Certificates": "server",
}
__all__ = sorted(_PUBLIC)


__getattr__ = lazy_names(__name__, _PUBLIC, globals())
