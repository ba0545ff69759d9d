"""The experiment options, defined once for the CLI and the pytest plugin; the
value parsers and usage errors every part shares.

Each option has one help text, used for the command-line flag and for the ini
key; an environment variable is the fallback. Precedence: command line, then
ini (pytest only), then environment, then the default.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class OptionError(ValueError):
    """A bad option value; the message names the option and the value."""


class UsageError(Exception):
    """Bad command-line usage: reported in one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap one of the parsers below for argparse's ``type=``."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise OptionError(f"{text!r} must be a finite number >= 0")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise OptionError(f"{text!r} must be > 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise OptionError(f"{text!r} must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(str(text).strip())
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise OptionError(f"{text!r} must be >= 0")
    return value


def any_int(text: str) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        raise OptionError(f"{text!r} is not a whole number") from None


def port(text: str) -> int:
    value = any_int(text)
    if not 0 <= value <= 65535:
        raise OptionError(f"{text!r} is out of range 0..65535")
    return value


def fraction_or_off(text: str) -> float | None:
    """A fraction 0..1, or ``off`` (None)."""
    if str(text).strip().lower() in ("off", "none", ""):
        return None
    value = non_negative_float(text)
    if value > 1:
        raise OptionError(f"{text!r} must be a fraction of requests, 0..1")
    return value


def sampler_name(text: str) -> str:
    """``auto`` or the name of a registered sampler backend (``harness.sampling``)."""
    from .sampling import names  # the registry: a new backend is accepted here without an edit

    value = str(text).strip().lower()
    known = names()
    if value not in known:
        raise OptionError(f"{text!r} is not a sampler: use {', '.join(known[:-1])} or {known[-1]}")
    return value


def directory(text: str) -> str:
    if not str(text).strip():
        raise OptionError("an empty path")
    return str(text)


@dataclass(frozen=True)
class Option:
    name: str  # attribute name; the flag is --name-with-dashes, the ini key leak_name
    parse: Callable[[str], Any]
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "leak_" + self.name

    @property
    def env(self) -> str:
        return "LEAK_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("delay", non_negative_float, 0.2, "seconds the slow server waits before each answer (the seed: 20)"),
    Option("cycles", positive_int, 10, "cycles per round; a cycle sends 1 periodic request plus 0..extra-max extra ones"),
    Option("period", positive_float, 0.05, "seconds between the starts of two cycles"),
    Option("extra_max", non_negative_int, 3, "most extra requests in one cycle (drawn at random, reproducibly)"),
    Option("seed", any_int, 1, "seed of the request schedule; the same seed replays the same schedule"),
    Option("rounds", positive_int, 3, "rounds that replay the schedule before a trend is judged (at least 2)"),
    Option("max_rounds", positive_int, 6, "most rounds run when the trend is not clear yet"),
    Option("sample_interval", positive_float, 0.05, "seconds between two background socket samples"),
    Option("idle_timeout", positive_float, 0.5, "the fixed client's idle timeout, in seconds"),
    Option("duration", positive_float, 10.0, "seconds a --cmd command may run before it is stopped "
           "(SIGTERM, then SIGKILL); one that ends sooner ends the experiment"),
    Option("max_churn", fraction_or_off, None, "fail when new connections per request exceed this fraction "
           "(0..1), e.g. 0.5; off by default: churn alone is not a leak"),
    Option("sampler", sampler_name, "auto", "how sockets are counted: netlink (Linux sock_diag, filtered by port "
           "in the kernel), psutil (portable, slower with many sockets), or auto (netlink where it answers)"),
    Option("results_dir", directory, "results", "directory the results (JSON, CSV, summary) are written to"),
)
BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Validated option values. Seconds for times, counts for the rest."""

    delay: float = 0.2
    cycles: int = 10
    period: float = 0.05
    extra_max: int = 3
    seed: int = 1
    rounds: int = 3
    max_rounds: int = 6
    sample_interval: float = 0.05
    idle_timeout: float = 0.5
    duration: float = 10.0
    max_churn: float | None = None
    sampler: str = "auto"
    results_dir: str = "results"

    def __post_init__(self) -> None:
        if self.rounds < 2:
            raise OptionError(f"--rounds {self.rounds}: a trend needs at least 2 rounds")
        if self.max_rounds < self.rounds:
            raise OptionError(f"--max-rounds {self.max_rounds}: must be >= --rounds ({self.rounds})")

    @property
    def results_path(self) -> Path:
        return Path(self.results_dir)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def settings_from(values: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings: ``values`` (None = not given) over the environment, over defaults.

    Raises OptionError naming the option and its bad value.
    """
    environ = os.environ if environ is None else environ
    chosen: dict[str, Any] = {}
    for option in OPTIONS:
        raw = values.get(option.name)
        source = option.flag
        if raw is None and option.env in environ:
            raw, source = environ[option.env], option.env
        if raw is None:
            continue
        try:
            chosen[option.name] = option.parse(raw)
        except OptionError as exc:
            raise OptionError(f"{source}: {exc}") from None
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
    return dataclasses.replace(settings, **chosen)


assert {f.name for f in fields(Settings)} == set(BY_NAME), "Settings and OPTIONS must list the same names"
assert all(getattr(Settings(), o.name) == o.default for o in OPTIONS), "one default per option"
