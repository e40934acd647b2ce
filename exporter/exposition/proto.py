"""Prometheus protobuf exposition: length-delimited io.prometheus.client.MetricFamily messages.

The only format Prometheus 2.4x scrapes native histograms from. Encoded by hand (no generated
code, no protobuf runtime) from the same Family objects the text renderer takes (core/series.py);
each label set encodes its own LabelPair fields once (LabelSet.proto). Field numbers,
from prometheus/client_model io/prometheus/client/metrics.proto (proto2):

  MetricFamily  name=1 string, help=2 string, type=3 enum MetricType, metric=4 Metric
  MetricType    COUNTER=0 GAUGE=1 SUMMARY=2 UNTYPED=3 HISTOGRAM=4
  Metric        label=1 LabelPair, gauge=2, counter=3, untyped=5, histogram=7 (timestamp_ms=6 unused)
  LabelPair     name=1, value=2
  Counter, Gauge, Untyped   value=1 double
  Histogram     sample_count=1 uint64, sample_sum=2 double, bucket=3 Bucket, schema=5 sint32,
                zero_threshold=6 double, zero_count=7 uint64, (zero_count_float=8,
                negative_span=9, negative_delta=10, negative_count=11: unused),
                positive_span=12 BucketSpan, positive_delta=13 sint64
  Bucket        cumulative_count=1 uint64, upper_bound=2 double
  BucketSpan    offset=1 sint32, length=2 uint32

Repeated scalars are written unpacked, as proto2 declares them (and client_golang writes them).
"""
from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from itertools import chain

from core.series import Family, HistogramSeries

METRIC_TYPES = {"counter": 0, "gauge": 1, "summary": 2, "untyped": 3, "histogram": 4}
# The field of Metric holding each scalar type's one-double message.
_VALUE_FIELD = {"counter": 3, "gauge": 2, "untyped": 5}

_double = struct.Struct("<d").pack
_ONE_BYTE = [bytes((i,)) for i in range(128)]


def varint(n: int) -> bytes:
    """Base-128 varint of an unsigned 64-bit integer."""
    if 0 <= n < 0x80:
        return bytes((n,))
    if n < 0 or n >> 64:
        raise ValueError(f"{n} is not a 64-bit unsigned integer")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n: int) -> int:
    """sint32/sint64 encoding: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ..."""
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _tag(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def _len_field(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + varint(len(payload)) + payload


def _varint_field(field: int, n: int) -> bytes:
    return _tag(field, 0) + varint(n)


def _double_field(field: int, v: float) -> bytes:
    return _tag(field, 1) + _double(float(v))


def _string_field(field: int, s: str) -> bytes:
    return _len_field(field, s.encode("utf-8"))


_bound_cache: dict[float, bytes] = {}


def _bucket(bound: float, cumulative: int) -> bytes:
    """Histogram.bucket: Bucket{cumulative_count=1, upper_bound=2}."""
    ub = _bound_cache.get(bound)
    if ub is None:
        if len(_bound_cache) >= 4096:
            _bound_cache.clear()
        ub = _bound_cache[bound] = b"\x11" + _double(float(bound))
    c = varint(cumulative)
    return b"\x1a" + bytes((10 + len(c),)) + b"\x08" + c + ub


def _span(offset: int, length: int) -> bytes:
    return _len_field(12, _varint_field(1, zigzag(offset)) + _varint_field(2, length))


def histogram(h: HistogramSeries) -> bytes:
    """A Histogram message: classic buckets (+Inf left implicit, as client_golang does), and the
    native fields when h.native is set. An unknown sum is NaN: 0 would be a false sum."""
    out = [_varint_field(1, h.count), _double_field(2, math.nan if h.sum is None else h.sum)]
    out.extend(_bucket(bound, cumulative) for bound, cumulative in h.buckets if bound != math.inf)
    n = h.native
    if n is not None:
        out.append(_varint_field(5, zigzag(n.schema)))
        out.append(_double_field(6, n.zero_threshold))
        out.append(_varint_field(7, n.zero_count))
        # No buckets: a no-op span still marks the message as native (client_model's rule).
        for offset, length in n.positive_spans or [(0, 0)]:
            out.append(_span(offset, length))
        out.extend(_varint_field(13, zigzag(d)) for d in n.positive_deltas)
    return b"".join(out)


def series_from_samples(samples: Iterable[tuple[str, str, float | int]]) -> list[HistogramSeries]:
    """Histogram series back from text samples (_bucket/_sum/_count), for families that carry
    only those: classic buckets, in the order given."""
    by_labels: dict = {}
    for suffix, ls, v in samples:
        if suffix == "_bucket":
            by_labels.setdefault(ls.without("le"), [[], None, 0])[0].append((float(ls.get("le")), v))
        elif suffix in ("_sum", "_count"):
            acc = by_labels.setdefault(ls, [[], None, 0])
            acc[1 if suffix == "_sum" else 2] = v
        else:
            raise ValueError(f"histogram sample suffix {suffix!r}")
    return [HistogramSeries(k, buckets, int(count), total) for k, (buckets, total, count) in by_labels.items()]


def metric_family(family: Family) -> bytes:
    """One MetricFamily message (not delimited)."""
    t = family.type
    if t not in METRIC_TYPES or t == "summary":
        raise ValueError(f"family {family.name}: type {t!r} has no protobuf encoding here")
    head = _string_field(1, family.name) + _string_field(2, family.help) + _varint_field(3, METRIC_TYPES[t])
    metrics: list[bytes] = []
    if t == "histogram":
        series = series_from_samples(family.samples) if family.samples else []
        series += family.histograms or []
        for h in series:
            metrics.append(_len_field(4, h.labels.proto + _len_field(7, histogram(h))))
    else:
        # Metric{label..., counter|gauge|untyped = {value=1 double}}: the value part is 11 bytes.
        value_head = _tag(_VALUE_FIELD[t], 2) + b"\x09\x09"
        pack, small = _double, _ONE_BYTE
        for suffix, ls, _v in family.samples:
            if suffix:
                raise ValueError(f"family {family.name}: sample suffix {suffix!r} in a {t}")
        for ls, v in chain([(ls, v) for _s, ls, v in family.samples], zip(family.labels, family.values)):
            lb = ls.proto
            n = len(lb) + 11
            metrics.append(b"\x22" + (small[n] if n < 128 else varint(n)) + lb + value_head
                           + pack(v if v.__class__ is float else float(v)))
    return head + b"".join(metrics)


def render(families: Iterable[Family]) -> bytes:
    """The delimited protobuf body: each MetricFamily preceded by its varint length. Families
    with no series are left out (Prometheus skips them anyway)."""
    out: list[bytes] = []
    for family in families:
        if not family.samples and not family.histograms and not family.labels:
            continue
        msg = metric_family(family)
        out.append(varint(len(msg)))
        out.append(msg)
    return b"".join(out)
