"""Prometheus text exposition format 0.0.4: the one place that renders it.

Hot path: a scrape renders every series, so render() builds lines with one
f-string per sample and a single join; label strings arrive pre-rendered
(render_labels) so a series whose key did not change costs no escaping."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render_labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in pairs)
    return f"{{{inner}}}" if inner else ""


def format_value(v: float | int) -> str:
    # bool is an int, but "True" is not a sample value.
    if isinstance(v, int):
        return str(int(v))
    if math.isfinite(v):
        return repr(float(v))
    if math.isnan(v):
        return "NaN"
    return "+Inf" if v > 0 else "-Inf"


def le_label(bound: float | int) -> str:
    """A histogram bound as prometheus_client (and so Go's client) writes it,
    so `le` values from different exporters match: 1.0, 0.001, 1e+06, +Inf."""
    bound = float(bound)
    if not math.isfinite(bound):
        return format_value(bound)
    sign, text = ("-", repr(-bound)) if bound < 0 else ("", repr(bound))
    dot = text.find(".")
    # Go's shortest %g uses an exponent from 1e+06 up, Python's repr from 1e+16.
    if dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1:]}".rstrip("0").rstrip(".")
        return f"{sign}{mantissa}e+{dot - 1:02d}"
    return sign + text


@dataclass
class Family:
    name: str  # as exposed, e.g. "syscalls_total"; the TYPE line carries it whole
    type: str  # "counter" | "gauge" | "histogram" | "untyped"
    help: str
    samples: list[tuple[str, str, float | int]] = field(default_factory=list)


def render(families: Iterable[Family]) -> bytes:
    chunks: list[str] = []
    for family in families:
        name = family.name
        chunks.append(f"# HELP {name} {escape_help(family.help)}\n# TYPE {name} {family.type}\n")
        # Inlined fast path: ints (most BPF counters) and finite floats skip the
        # format_value() call; `v - v == 0` is false exactly for inf and NaN.
        chunks.extend([
            f"{name}{suffix}{labels} {v}\n" if v.__class__ is int
            else f"{name}{suffix}{labels} {v!r}\n" if v.__class__ is float and v - v == 0
            else f"{name}{suffix}{labels} {format_value(v)}\n"
            for suffix, labels, v in family.samples
        ])
    return "".join(chunks).encode("utf-8")
