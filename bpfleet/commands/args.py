"""Argument types several commands share: each turns one command-line string into a value, or
says plainly what is wrong (argparse `type=` callables raise ArgumentTypeError; `knob`, also
used outside argparse, raises ValueError)."""
from __future__ import annotations

import argparse

from orchestrator.engine.waves import parse_step


def number(convert, noun: str, minimum: float, inclusive: bool = True):
    """An argparse type: `convert` (int or float) of the argument, at least `minimum` (or, with
    inclusive=False, above it); the error says which."""
    def parse(s: str):
        try:
            v = convert(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {s!r}") from None
        if v < minimum or (not inclusive and v == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>=' if inclusive else '>'} {minimum}: {s!r}")
        return v
    parse.__name__ = noun.split()[-1]
    return parse


count = number(int, "an integer", 0)                 # hosts, failures, forks, seconds of a timeout
seconds = number(float, "a number of seconds", 0)
positive_number = number(float, "a number", 0, inclusive=False)
positive_count = number(int, "an integer", 1)


def steps(s: str) -> tuple:
    """Cumulative wave sizes after the canary: "1,10%,50%,100%"."""
    parsed = tuple(x.strip() for x in s.split(",") if x.strip())
    try:
        for x in parsed:
            parse_step(x, 100)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not parsed:
        raise argparse.ArgumentTypeError("give at least one step, e.g. 1,10%,50%,100%")
    return parsed


def ref(s: str) -> tuple[str, str]:
    """NAME@VERSION -> (name, version)."""
    name, at, version = s.partition("@")
    if not name or not at or not version:
        raise argparse.ArgumentTypeError(f"{s!r}: expected NAME@VERSION (e.g. syscalls@1.1.0)")
    return name, version


def knob(text: str) -> tuple[str, int | bool]:
    """--knob NAME=VALUE -> (name, integer or boolean); ValueError says which --knob is wrong."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--knob {text!r}: expected NAME=VALUE")
    low = value.strip().lower()
    if low in ("true", "false"):
        return name, low == "true"
    try:
        return name, int(value, 0)
    except ValueError:
        raise ValueError(f"--knob {text!r}: the value must be an integer or true/false") from None
