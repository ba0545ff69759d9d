"""What a flag, an ini key or an environment variable may hold: the value parsers and the
errors a bad value raises, shared by every part (the experiment options, ``options.py``;
the slow server's flags, ``server/main.py``). Apart from the options' table, so that the
slow server, a process of its own thousands of times in a run, does not load it (~1.4 MB
of the server's memory, measured with smaps_rollup).
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

MAX_DELAY_S = 3600.0  # the server's bound on ?delay= and --delay, and the experiments' --delay: every run ends


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


def at_most(parse: Callable[[str], Any], most: float, least: float | None = None) -> Callable[[str], Any]:
    """``parse``, then the value must be at most ``most`` (and at least ``least``):
    every run ends by itself, and a value past the bound is a mistake, not a wish."""

    def bounded(text: str) -> Any:
        value = parse(text)
        if least is not None and value < least:
            raise OptionError(f"{text!r} must be >= {least:g}")
        if value > most:
            raise OptionError(f"{text!r} must be <= {most:g}")
        return value

    bounded.__name__ = parse.__name__
    bounded.most = most  # type: ignore[attr-defined]
    return bounded


def rounds_or_auto(text: str) -> int | None:
    """2 to 100 rounds, or ``auto`` (None): 2 where the sweeps' exact check runs, else 3."""
    if str(text).strip().lower() == "auto":
        return None
    return at_most(positive_int, 100, least=2)(text)


def fraction_or_off(text: str) -> float | None:
    """A fraction 0..1, or ``off`` (None)."""
    if str(text).strip().lower() in ("off", "none", ""):
        return None
    value = non_negative_float(text)
    if value > 1:
        raise OptionError(f"{text!r} must be a fraction of requests, 0..1")
    return value


ON = ("on", "yes", "true", "1")
OFF = ("off", "no", "false", "0")


def on_off(text: str) -> bool:
    """``on`` or ``off`` (also yes/no, true/false, 1/0)."""
    value = str(text).strip().lower()
    if value in ON or value in OFF:
        return value in ON
    raise OptionError(f"{text!r} is not on or off")


SERVER_LOOPS = ("auto", "asyncio", "uvloop")


def server_loop(text: str) -> str:
    """``auto`` (uvloop where installed), ``asyncio`` or ``uvloop``."""
    value = str(text).strip().lower()
    if value not in SERVER_LOOPS:
        raise OptionError(f"{text!r} is not an event loop: use auto, asyncio or uvloop")
    return value
