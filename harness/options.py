"""The experiment options, defined once for the CLI and the pytest plugin (the value
parsers and usage errors every part shares: ``values.py``).

Each option has one help text, used for the command-line flag and for the ini
key; an environment variable is the fallback. Precedence: command line, then
ini (pytest only), then environment, then the default.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .values import (MAX_DELAY_S, OptionError, any_int, at_most, fraction_or_off, non_negative_float, non_negative_int,
                     on_off, positive_float, positive_int, rounds_or_auto, server_loop)


def sampler_name(text: str) -> str:
    """``auto`` or the name of a registered sampler backend (``harness.sampling``)."""
    from .sampling import names  # the registry: a new backend is accepted here without an edit

    value = str(text).strip().lower()
    known = names()
    if value not in known:
        raise OptionError(f"{text!r} is not a sampler: use {', '.join(known[:-1])} or {known[-1]}")
    return value


def _writable_place(path: Path, text: str) -> None:
    """The nearest existing folder at or above ``path`` must be a folder this user can write in."""
    base = path
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise OptionError(f"{text!r}: {str(base)!r} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OptionError(f"{text!r}: cannot write in {str(base)!r}")


def _shown(text: str, most: int = 60) -> str:
    """A value as a message names it: repr, cut in the middle when long."""
    shown = repr(text)
    return shown if len(shown) <= most else f"{shown[:most // 2]}...{shown[-most // 2:]} ({len(text)} characters)"


def _path_checked(text: str, check) -> str:
    """Run ``check(path)``; a path the system refuses to look at (too long, a NUL byte,
    a loop of links) is an OptionError naming it, never a traceback."""
    if not str(text).strip():
        raise OptionError("an empty path")
    try:
        check(Path(text))
    except OptionError:
        raise
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OptionError(f"{_shown(str(text))}: not a usable path ({reason})") from None
    return str(text)


def directory(text: str) -> str:
    """A folder results can be written to: it exists as a folder, or can be made
    (nothing is made here: checking has no side effect)."""
    def check(path: Path) -> None:
        if path.exists() and not path.is_dir():
            raise OptionError(f"{text!r} is a file, not a folder")
        _writable_place(path, str(text))
    return _path_checked(text, check)


def output_file(text: str) -> str:
    """A file that can be written: not a folder, in a folder that exists or can be made."""
    def check(path: Path) -> None:
        if path.is_dir():
            raise OptionError(f"{text!r} is a folder, not a file")
        _writable_place(path.parent if str(path.parent) else Path("."), str(text))
    return _path_checked(text, check)


@dataclass(frozen=True)
class Option:
    name: str  # attribute name; the flag is --name-with-dashes, the ini key leak_name
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def default_text(self) -> str:
        """The default as a user would type it (``on``/``off`` for a switch)."""
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return str(self.default)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flag_kwargs(self) -> dict[str, Any]:
        """argparse's extra arguments for the flag: an on/off option alone means on (``--tls``)."""
        return {"nargs": "?", "const": "on"} if self.parse is on_off else {}

    @property
    def ini(self) -> str:
        return "leak_" + self.name

    @property
    def env(self) -> str:
        return "LEAK_" + self.name.upper()


AUTO_ROUNDS_WITH_SWEEPS, AUTO_ROUNDS_WITHOUT_SWEEPS = 2, 3
MAX_DEADLINE_S = 86_400.0  # a day: the longest any one experiment may be allowed to run

OPTIONS: tuple[Option, ...] = (
    Option("delay", at_most(non_negative_float, MAX_DELAY_S), 0.2,
           "seconds the slow server waits before each answer (the seed: 20; at most 3600)"),
    Option("cycles", at_most(positive_int, 100_000), 8,
           "cycles per round; a cycle sends 1 periodic request plus 0..extra-max extra ones (at most 100000)"),
    Option("period", at_most(positive_float, 60.0), 0.05, "seconds between the starts of two cycles (at most 60)"),
    Option("extra_max", at_most(non_negative_int, 1000), 3,
           "most extra requests in one cycle, drawn at random, reproducibly (at most 1000)"),
    Option("seed", any_int, 1, "seed of the request schedule; the same seed replays the same schedule"),
    Option("rounds", rounds_or_auto, None,
           "rounds that replay the schedule before a trend is judged: 2 to 100, or auto (2 where the sweeps' "
           "exact check runs, else 3)"),
    Option("max_rounds", at_most(positive_int, 100, least=2), 6,
           "most rounds run when the trend is not clear yet (2 to 100, at least --rounds)"),
    Option("budget", at_most(positive_int, 1_000_000, least=10), 260,
           "requests a tcp_count run may send in all, rounds and sweeps, while it looks for abandoned sockets "
           "(10 to 1000000); a plateau says how many it rests on"),
    Option("sample_interval", at_most(positive_float, 10.0), 0.05,
           "seconds between two background socket samples (at most 10)"),
    Option("idle_timeout", at_most(positive_float, MAX_DELAY_S), 0.5,
           "the fixed client's idle timeout, in seconds (at most 3600)"),
    Option("duration", at_most(positive_float, MAX_DEADLINE_S), 10.0,
           "seconds a --cmd command may run before it is stopped (SIGTERM, then SIGKILL); one that ends sooner "
           "ends the experiment (at most 86400)"),
    Option("deadline", at_most(positive_float, MAX_DEADLINE_S), 600.0,
           "seconds one experiment may take in all; past it, it stops, keeps what it measured, and the run "
           "exits 3 (at most 86400)"),
    Option("max_churn", fraction_or_off, None, "fail when new connections per request exceed this fraction "
           "(0..1), e.g. 0.5; off by default: churn alone is not a leak"),
    Option("sampler", sampler_name, "auto", "how sockets are counted: netlink (Linux sock_diag, filtered by port "
           "in the kernel), psutil (portable, slower with many sockets), or auto (netlink where it answers)"),
    Option("results_dir", directory, "results", "directory the results (JSON, CSV, summary) are written to"),
    Option("server_loop", server_loop, "auto", "the slow server's event loop: uvloop where installed (auto; "
           "a p99 overhead ~4x smaller at 5,000 slow requests), asyncio's own, or uvloop"),
    Option("tls", on_off, False, "serve HTTPS with a CA and a certificate made at start by trustme; catalog clients "
           "trust it (verify=), commands and a user's functions through SSL_CERT_FILE, REQUESTS_CA_BUNDLE and "
           "CURL_CA_BUNDLE"),
    Option("plots", on_off, True, "draw a PNG of each run and of a session (off: JSON, CSV and the table only, "
           "about 0.5-1 s of CPU less a run)"),
)
BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Validated option values. Seconds for times, counts for the rest."""

    delay: float = 0.2
    cycles: int = 8
    period: float = 0.05
    extra_max: int = 3
    seed: int = 1
    rounds: int | None = None  # None: auto (rounds_for)
    max_rounds: int = 6
    budget: int = 260
    sample_interval: float = 0.05
    idle_timeout: float = 0.5
    duration: float = 10.0
    deadline: float = 600.0
    max_churn: float | None = None
    sampler: str = "auto"
    results_dir: str = "results"
    server_loop: str = "auto"
    tls: bool = False
    plots: bool = True

    def __post_init__(self) -> None:
        if self.rounds is not None and self.rounds < 2:
            raise OptionError(f"rounds={self.rounds}: a trend needs at least 2 rounds")
        if self.max_rounds < (self.rounds or AUTO_ROUNDS_WITHOUT_SWEEPS):
            raise OptionError(f"max_rounds={self.max_rounds}: must be >= rounds ({self.rounds or 'auto: 3'})")

    def rounds_for(self, exact: bool) -> int:
        """Rounds before the trend is judged: as given, or 2 where sweeps check every
        socket exactly (they carry the evidence a third round would), else 3."""
        if self.rounds is not None:
            return self.rounds
        return AUTO_ROUNDS_WITH_SWEEPS if exact else AUTO_ROUNDS_WITHOUT_SWEEPS

    @property
    def results_path(self) -> Path:
        return Path(self.results_dir)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def settings_from(values: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                  sources: Mapping[str, str] | None = None) -> Settings:
    """Build Settings: ``values`` (None = not given) over the environment, over defaults.

    ``sources`` names where each given value came from (default: its flag; the
    plugin says ``leak_rounds (ini)`` for an ini key). Raises OptionError naming
    the source and the bad value: ``LEAK_ROUNDS: '1' must be >= 2``.
    """
    environ = os.environ if environ is None else environ
    chosen: dict[str, Any] = {}
    where: dict[str, str] = {}
    for option in OPTIONS:
        raw = values.get(option.name)
        source = (sources or {}).get(option.name, option.flag)
        if raw is None and option.env in environ:
            raw, source = environ[option.env], option.env
        if raw is None:
            continue
        if raw == []:  # argparse drops a value of "--" (``--results-dir=--``) and leaves an empty list
            raw = "--"
        try:
            chosen[option.name] = option.parse(raw)
        except OptionError as exc:
            raise OptionError(f"{source}: {exc}") from None
        where[option.name] = source
    rounds = chosen.get("rounds") or AUTO_ROUNDS_WITHOUT_SWEEPS
    max_rounds = chosen.get("max_rounds", Settings.max_rounds)
    if max_rounds < rounds:
        named = where.get("max_rounds", f"{BY_NAME['max_rounds'].flag} (default)")
        raise OptionError(f"{named}: {max_rounds} must be >= {where.get('rounds', '--rounds (default)')} ({rounds})")
    return Settings(**chosen)


def override(settings: Settings, **values: Any) -> Settings:
    """``settings`` with some options replaced, each validated as if given on the
    command line (``cycles=20``, ``max_churn=0.5``); raises OptionError."""
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise OptionError(f"unknown option {unknown[0]!r}; options are: {', '.join(BY_NAME)}")
    chosen = {}
    for name, value in values.items():
        try:
            chosen[name] = None if value is None else BY_NAME[name].parse(str(value))
        except OptionError as exc:
            raise OptionError(f"{name}={value!r}: {exc}") from None
    try:
        return dataclasses.replace(settings, **chosen)
    except OptionError as exc:  # one value against another (max_rounds < rounds): name what was given
        raise OptionError(", ".join(f"{k}={v!r}" for k, v in values.items()) + f": {exc}") from None


assert {f.name for f in fields(Settings)} == set(BY_NAME), "Settings and OPTIONS must list the same names"
assert all(getattr(Settings(), o.name) == o.default for o in OPTIONS), "one default per option"
