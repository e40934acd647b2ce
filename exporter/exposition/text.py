"""Prometheus exposition: the one place that renders it. Text format 0.0.4 here; the protobuf
format (native histograms) in exporter.exposition.proto, from the same Family objects.

Hot path: a scrape renders every series, so render() builds lines with one
f-string per sample and a single join; label strings arrive pre-rendered
(render_labels) so a series whose key did not change costs no escaping."""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROTOBUF_CONTENT_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                         "encoding=delimited")
FORMATS = {"text": CONTENT_TYPE, "protobuf": PROTOBUF_CONTENT_TYPE}


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


_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE_RE = re.compile(r"\\(.)", re.S)


def _unescape(m: re.Match) -> str:
    return "\n" if m.group(1) == "n" else m.group(1)


def parse_labels(rendered: str) -> list[tuple[str, str]]:
    """render_labels() backwards: '{a="x",b="y\\n"}' -> [("a", "x"), ("b", "y\n")]."""
    return [(name, _UNESCAPE_RE.sub(_unescape, value) if "\\" in value else value)
            for name, value in _LABEL_RE.findall(rendered)]


@dataclass
class HistogramSeries:
    """One histogram series, in the form every exposition format can take it from."""
    labels: tuple[tuple[str, str], ...]   # (name, value) pairs, unescaped; no `le`
    buckets: list[tuple[float, int]]      # (inclusive upper bound, cumulative count), ascending, last +Inf
    count: int
    sum: float | None                     # None: the program keeps no sum (text: no _sum line)
    native: object | None = None          # exporter.histograms.Native: protobuf adds native buckets


@dataclass
class Family:
    name: str  # as exposed, e.g. "syscalls_total"; the TYPE line carries it whole
    type: str  # "counter" | "gauge" | "histogram" | "untyped"
    help: str
    samples: list[tuple[str, str, float | int]] = field(default_factory=list)
    # Histogram families may carry their series here instead of (or besides) text samples.
    histograms: list[HistogramSeries] | None = None


def histogram_samples(series: Iterable[HistogramSeries]) -> list[tuple[str, str, float | int]]:
    """Text samples (_bucket per `le`, _sum, _count) of histogram series."""
    samples: list[tuple[str, str, float | int]] = []
    les: dict[float, str] = {}
    for h in series:
        lbl = render_labels(h.labels)
        base = lbl[1:-1] + "," if lbl else ""
        for bound, cumulative in h.buckets:
            le = les.get(bound)
            if le is None:
                le = les[bound] = le_label(bound)
            samples.append(("_bucket", f'{{{base}le="{le}"}}', cumulative))
        if h.sum is not None:
            samples.append(("_sum", lbl, h.sum))
        samples.append(("_count", lbl, h.count))
    return samples


def negotiate(accept: str | None, formats: Iterable[str] = ("text", "protobuf")) -> str:
    """The format to answer a scrape with, from its Accept header: "protobuf" when the client
    prefers Prometheus's delimited MetricFamily protobuf (and it is in `formats`), else "text"."""
    best = {"text": (0.0, 0), "protobuf": (0.0, 0)}
    for pos, item in enumerate((accept or "").split(",")):
        kind, *params = [p.strip() for p in item.split(";")]
        kind = kind.lower()
        opts = {}
        for p in params:
            k, _, v = p.partition("=")
            opts[k.strip().lower()] = v.strip().strip('"')
        try:
            q = float(opts.pop("q", "1"))
        except ValueError:
            q = 0.0
        if kind == "application/vnd.google.protobuf":
            fmt = ("protobuf" if opts.get("proto") == "io.prometheus.client.MetricFamily"
                   and opts.get("encoding") == "delimited" else None)
        elif kind in ("text/plain", "text/*", "*/*"):
            fmt = "text"
        else:
            fmt = None
        if fmt and (q, -pos) > best[fmt]:
            best[fmt] = (q, -pos)
    if "protobuf" in formats and best["protobuf"][0] > 0 and best["protobuf"] > best["text"]:
        return "protobuf"
    return "text"


def render(families: Iterable[Family]) -> bytes:
    chunks: list[str] = []
    for family in families:
        name = family.name
        chunks.append(f"# HELP {name} {escape_help(family.help)}\n# TYPE {name} {family.type}\n")
        samples = family.samples
        if family.histograms:
            samples = samples + histogram_samples(family.histograms)
        # Inlined fast path: ints (most BPF counters) and finite floats skip the
        # format_value() call; `v - v == 0` is false exactly for inf and NaN.
        chunks.extend([
            f"{name}{suffix}{labels} {v}\n" if v.__class__ is int
            else f"{name}{suffix}{labels} {v!r}\n" if v.__class__ is float and v - v == 0
            else f"{name}{suffix}{labels} {format_value(v)}\n"
            for suffix, labels, v in samples
        ])
    return "".join(chunks).encode("utf-8")
