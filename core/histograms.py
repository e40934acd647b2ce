"""Histogram slots → every output format, exactly (docs/histograms.md). Pure: numbers in, numbers out.

A BPF histogram is a list of raw slot counts. `log2` slots come from `bpfleet_log2_slot()`
(programs/include/bpfleet.h): slot 0 holds 0, slot s >= 1 holds (2^(s-2), 2^(s-1)], upper bound
inclusive, and the last slot also holds everything larger. `linear` slot i holds the integers in
[min + i*width, min + (i+1)*width), the last slot also the rest. `scale` turns raw units into the
exposed ones (1e-6: µs → s).

* Classic buckets (Prometheus `le`, OTel explicit bounds) are exact for every scheme and scale.
* Exponential buckets (OTel scale 0, Prometheus native schema 0) are exact only where every slot
  is one whole exponential bucket: log2 slots, a scale that is a power of two (1 included), and
  a last slot that cannot overflow. Otherwise the functions raise `Inexact` instead of
  approximating; `why_not_exponential()` answers the same question from the plan alone.
"""
from __future__ import annotations

import math
from itertools import accumulate
from typing import NamedTuple

from core.binding import upper_bounds
from core.series import HistogramSeries, LabelSet

# bpfleet_log2_slot(2**64 - 1) == 65, so with 66 slots or more the last slot never clamps: it
# is (2^63, 2^64], which holds every u64. With fewer, the last slot is an overflow slot.
LOG2_COMPLETE_SLOTS = 66
# Native zero bucket [-2^-128, 2^-128]: client_golang's default, so our histograms merge with
# Go-instrumented ones without widening it. No positive value we expose is that small (the
# smallest is 1 * scale and scale >= 2^-127 here), so it holds exactly slot 0. Being > 0 also
# makes every Prometheus version (2.40+) take the message as native even when it is empty.
NATIVE_ZERO_THRESHOLD = 2.0 ** -128
NATIVE_SCHEMA = 0
_MIN_SCALE_EXPONENT = -127


class Inexact(ValueError):
    """This output format cannot hold these slots without loss."""


class Scheme(NamedTuple):
    """The slot scheme; core.manifest.BucketSpec has the same attributes and works too."""
    scheme: str           # "log2" | "linear"
    min: int = 0
    width: int = 1


LOG2 = Scheme("log2")


class Exponential(NamedTuple):
    """An OTel ExponentialHistogram data point's buckets at OTel scale 0 (no negative buckets)."""
    zero_count: int
    offset: int           # OTel index of counts[0]; index i covers (2^i, 2^(i+1)]
    counts: list[int]


class Explicit(NamedTuple):
    """An OTel explicit-bucket histogram: counts[i] covers (bounds[i-1], bounds[i]]."""
    bounds: list[float]   # len(counts) - 1 finite bounds; the last bucket is (bounds[-1], +Inf)
    counts: list[int]


class Native(NamedTuple):
    """A Prometheus native histogram's buckets (client_model Histogram fields 5, 6, 7, 12, 13)."""
    schema: int
    zero_threshold: float
    zero_count: int
    positive_spans: list[tuple[int, int]]   # (offset, length); offsets after the first are gaps
    positive_deltas: list[int]              # each bucket's count minus the previous one's


def _scheme(scheme) -> Scheme:
    if isinstance(scheme, str):
        if scheme != "log2":
            raise ValueError(f"scheme {scheme!r}: pass a Scheme (or BucketSpec) to give linear min and width")
        return LOG2
    if scheme.scheme not in ("log2", "linear"):
        raise ValueError(f"unknown bucket scheme {scheme.scheme!r}")
    return Scheme(scheme.scheme, scheme.min, scheme.width)


def power_of_two_exponent(scale: float) -> int | None:
    """k if scale == 2**k exactly (1.0 -> 0, 0.5 -> -1, 1024.0 -> 10), else None (1e-6, 0, < 0)."""
    if not (scale > 0 and math.isfinite(scale)):
        return None
    mantissa, exp = math.frexp(scale)
    return exp - 1 if mantissa == 0.5 else None


def classic_buckets(slots: list[int], scheme, scale: float) -> list[tuple[float, int]]:
    """Cumulative `le` buckets: (inclusive upper bound in exposed units, count), ending with +Inf.

    log2 slot s's bound is 0 for s == 0, else 2^(s-1), times scale; linear slot i's is
    min + (i+1)*width - 1, times scale. The last slot, which also holds everything larger, is
    +Inf. Exact for every scheme and scale: a bound is just a number."""
    bounds = upper_bounds(_scheme(scheme), len(slots), scale) + (math.inf,)
    return list(zip(bounds, accumulate(slots)))


def explicit(slots: list[int], min: int, width: int, scale: float) -> Explicit:
    """Linear slots as an OTel explicit-bucket histogram (bounds are upper-inclusive there too)."""
    return explicit_buckets(slots, Scheme("linear", min, width), scale)


def explicit_buckets(slots: list[int], scheme, scale: float) -> Explicit:
    """Any slots as an OTel explicit-bucket histogram: the classic bounds without +Inf, and the
    per-slot counts. Exact for every scheme and scale, like classic_buckets()."""
    return Explicit(list(upper_bounds(_scheme(scheme), len(slots), scale)), list(slots))


def why_not_exponential(scheme, slots: int, scale: float) -> str | None:
    """None when every possible content of `slots` log2 slots converts exactly to exponential
    buckets (OTel scale 0 / Prometheus schema 0) in units of `scale`; else the reason why not."""
    name = scheme if isinstance(scheme, str) else scheme.scheme
    if name != "log2":
        return f"{name} slots are not exponential buckets"
    k = power_of_two_exponent(scale)
    if k is None:
        return (f"scale {scale!r} is not a power of two, so the slot bounds 2^n * scale are not "
                "powers of two in the exposed unit")
    if k < _MIN_SCALE_EXPONENT:
        return f"scale 2^{k} puts values inside the native zero bucket"
    if slots < LOG2_COMPLETE_SLOTS:
        return (f"with {slots} slots the last slot also holds every larger value, which no "
                f"exponential bucket covers ({LOG2_COMPLETE_SLOTS} slots never overflow)")
    return None


def _check_log2(slots: list[int], scale: float) -> int:
    """The scale's power-of-two exponent, or Inexact if these counts can't be exact buckets."""
    if not slots:
        raise ValueError("a histogram has at least one slot")
    k = power_of_two_exponent(scale)
    if k is None:
        raise Inexact(f"scale {scale!r} is not a power of two: slot bounds 2^n * scale fall "
                      "inside exponential buckets")
    if k < _MIN_SCALE_EXPONENT:
        raise Inexact(f"scale 2^{k} is below the native zero threshold")
    if len(slots) < LOG2_COMPLETE_SLOTS and slots[-1]:
        raise Inexact(f"the last of {len(slots)} slots holds {slots[-1]} values of unknown size "
                      "(it also holds everything larger); only an le=+Inf bucket can carry them")
    return k


def _nonzero_run(slots: list[int]) -> tuple[int, int]:
    """First and last+1 slot >= 1 with a count, or (0, 0) when there is none."""
    nz = [s for s in range(1, len(slots)) if slots[s]]
    return (nz[0], nz[-1] + 1) if nz else (0, 0)


def exponential(slots: list[int], scheme="log2", scale: float = 1.0) -> Exponential:
    """log2 slots as OTel exponential buckets at OTel scale 0, where index i covers (2^i, 2^(i+1)].

    Slot 0 is the zero count; slot s >= 1 covers (2^(s-2), 2^(s-1)], which is index s-2 in raw
    units, and index s-2+k in units of scale = 2^k. Leading and trailing empty buckets are
    trimmed; empty buckets between are kept (OTel counts are contiguous). Raises Inexact when
    the scale is not a power of two or the overflow slot is not empty (why_not_exponential)."""
    if _scheme(scheme).scheme != "log2":
        raise Inexact("linear slots are not exponential buckets: use explicit()")
    k = _check_log2(slots, scale)
    first, end = _nonzero_run(slots)
    if first == 0:
        return Exponential(slots[0], 0, [])
    return Exponential(slots[0], first - 2 + k, list(slots[first:end]))


def native(slots: list[int], scale: float = 1.0) -> Native:
    """log2 slots as a Prometheus native histogram at schema 0, where index i covers (2^(i-1), 2^i].

    Slot 0 is the zero bucket (threshold 2^-128); slot s >= 1 has upper bound 2^(s-1), which
    is index s-1 in raw units, s-1+k in units of scale = 2^k. Empty buckets are left out: each
    run of non-empty ones is a span, the first span's offset is its index, later offsets count
    the empty buckets skipped. Deltas run across spans. Raises Inexact like exponential()."""
    k = _check_log2(slots, scale)
    spans: list[tuple[int, int]] = []
    deltas: list[int] = []
    prev_index, prev_count = None, 0
    for s in range(1, len(slots)):
        c = slots[s]
        if not c:
            continue
        index = s - 1 + k
        if prev_index is not None and index == prev_index + 1:
            spans[-1] = (spans[-1][0], spans[-1][1] + 1)
        else:
            spans.append((index if prev_index is None else index - prev_index - 1, 1))
        deltas.append(c - prev_count)
        prev_index, prev_count = index, c
    return Native(NATIVE_SCHEMA, NATIVE_ZERO_THRESHOLD, slots[0], spans, deltas)


def native_buckets(n: Native) -> dict[int, int]:
    """Index → count of a Native's positive buckets (spans and deltas decoded), for checks."""
    out, index, count, i = {}, 0, 0, 0
    for j, (offset, length) in enumerate(n.positive_spans):
        index = offset if j == 0 else index + offset
        for _ in range(length):
            count += n.positive_deltas[i]
            out[index] = count
            index, i = index + 1, i + 1
    return out


def prometheus_series(labels: LabelSet, slots: list[int], total: int | None, scheme, scale: float,
                      with_native: bool) -> HistogramSeries:
    """One histogram series for the exposition renderers (text and protobuf) and OTLP.

    labels: the series' label set, without `le`. slots: raw slot counts.
    total: the raw sum, or None when the program keeps none. with_native: add the native
    buckets; decide it once per metric with `why_not_exponential(scheme, slots, scale) is None`
    (raises Inexact if these counts can't be native exactly)."""
    buckets = classic_buckets(slots, scheme, scale)
    return HistogramSeries(
        labels=labels,
        buckets=buckets,
        count=buckets[-1][1],
        sum=None if total is None else total * scale,
        native=native(slots, scale) if with_native else None,
    )
