"""Prometheus exposition: the one place that renders it. Text format 0.0.4 here; the protobuf
format (native histograms) in exporter.exposition.proto, from the same Family objects
(core/series.py).

Hot path: a scrape renders every series, so render() builds lines with one f-string per sample
and a single join; each label set keeps its text (LabelSet.text), so a series whose key did not
change costs no escaping."""
from __future__ import annotations

import math
from collections.abc import Iterable

from core.series import Family, HistogramSeries

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROTOBUF_CONTENT_TYPE = ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
                         "encoding=delimited")
FORMATS = {"text": CONTENT_TYPE, "protobuf": PROTOBUF_CONTENT_TYPE}


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


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


def histogram_lines(name: str, series: Iterable[HistogramSeries]) -> list[str]:
    """The _bucket (one per `le`), _sum and _count lines of histogram series."""
    lines: list[str] = []
    les: dict[float, str] = {}
    for h in series:
        lbl = h.labels.text
        base = lbl[1:-1] + "," if lbl else ""
        for bound, cumulative in h.buckets:
            le = les.get(bound)
            if le is None:
                le = les[bound] = le_label(bound)
            lines.append(f'{name}_bucket{{{base}le="{le}"}} {format_value(cumulative)}\n')
        if h.sum is not None:
            lines.append(f"{name}_sum{lbl} {format_value(h.sum)}\n")
        lines.append(f"{name}_count{lbl} {format_value(h.count)}\n")
    return lines


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
        # Inlined fast path: ints (most BPF counters) and finite floats skip the
        # format_value() call; `v - v == 0` is false exactly for inf and NaN.
        chunks.extend([
            f"{name}{suffix}{labels.text} {v}\n" if v.__class__ is int
            else f"{name}{suffix}{labels.text} {v!r}\n" if v.__class__ is float and v - v == 0
            else f"{name}{suffix}{labels.text} {format_value(v)}\n"
            for suffix, labels, v in family.samples
        ])
        if family.labels:   # a collector's columns: the same lines, no suffix
            chunks.extend([
                f"{name}{labels.text} {v}\n" if v.__class__ is int
                else f"{name}{labels.text} {v!r}\n" if v.__class__ is float and v - v == 0
                else f"{name}{labels.text} {format_value(v)}\n"
                for labels, v in zip(family.labels, family.values)
            ])
        if family.histograms:
            chunks.extend(histogram_lines(name, family.histograms))
    return "".join(chunks).encode("utf-8")
