"""Slots → classic, exponential (OTel), explicit and native (Prometheus) buckets, exactly.

Oracles that don't share our formula: a transliteration of the C bpfleet_log2_slot(), the
documented rule written as a search, client_golang's native bucket key (math.frexp), and the
OpenTelemetry SDK's own scale-0 ExponentMapping."""
from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.exponent_mapping import (
    ExponentMapping,
)

from core.manifest import BucketSpec
from core.binding import upper_bounds
from core.series import EMPTY, labels
from core.histograms import (
    LOG2, LOG2_COMPLETE_SLOTS, NATIVE_ZERO_THRESHOLD, Exponential, Explicit, Inexact, Native,
    Scheme, classic_buckets, explicit, explicit_buckets, exponential, native, native_buckets,
    power_of_two_exponent, prometheus_series, why_not_exponential,
)

U64_MAX = 2**64 - 1
INF = math.inf
OTEL = ExponentMapping(0)


def c_log2_slot(v: int, max_slots: int) -> int:
    """programs/include/bpfleet.h bpfleet_log2_slot(), line by line, in u64/u32 arithmetic."""
    assert 0 <= v <= U64_MAX
    if v == 0:
        return 0
    v = (v - 1) & U64_MAX
    s = 1
    if v >> 32:
        s += 32
        v >>= 32
    if v >> 16:
        s += 16
        v >>= 16
    if v >> 8:
        s += 8
        v >>= 8
    if v >> 4:
        s += 4
        v >>= 4
    if v >> 2:
        s += 2
        v >>= 2
    if v >> 1:
        s += 1
        v >>= 1
    s += v
    return s if s < max_slots else max_slots - 1


def rule_slot(v: int, n: int) -> int:
    """The documented rule: slot 0 holds 0; slot s >= 1 holds (2^(s-2), 2^(s-1)]; the last
    slot also holds everything larger. Found by search, not by bit tricks."""
    if v == 0:
        return 0
    s = 1
    while not (v <= 2 ** (s - 1)):
        s += 1
    assert s == 1 or 2 ** (s - 2) < v
    return min(s, n - 1)


def prom_native_index(x: float) -> int:
    """client_golang's schema-0 bucket key for a positive observation: frexp, then one down
    when x is an exact power of two (upper bound inclusive)."""
    frac, exp = math.frexp(x)
    return exp - 1 if frac == 0.5 else exp


def exact_index(v: int) -> int:
    """The i with 2^(i-1) < v <= 2^i for an integer v >= 1, by search in exact integers."""
    i = 0
    while v > 2**i:
        i += 1
    return i


def exact_float(v: int) -> bool:
    return float(v) == v


# u64 values a float64 holds exactly (every one up to 2^53, then multiples of powers of two),
# so float-based oracles (client_golang's frexp, the OTel SDK) see the same value we bucket.
EXACT_U64 = st.integers(0, 2**53).flatmap(lambda m: st.integers(0, 11).map(lambda e: m << e)).filter(
    lambda v: v <= U64_MAX)


def observe(values, n: int) -> list[int]:
    slots = [0] * n
    for v in values:
        slots[c_log2_slot(v, n)] += 1
    return slots


EDGE_VALUES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 2**40 - 1, 2**40, 2**40 + 1, 2**63, 2**63 + 1, U64_MAX]


# ---- the slot rule itself ---------------------------------------------------------------------

@pytest.mark.parametrize("v, slot", [
    (0, 0), (1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (8, 4), (9, 5),
    (2**40, 41), (2**40 + 1, 42), (2**63, 64), (2**63 + 1, 65), (U64_MAX, 65),
])
def test_c_slot_edges(v, slot):
    assert c_log2_slot(v, 100) == slot
    assert rule_slot(v, 100) == slot


@pytest.mark.parametrize("v", EDGE_VALUES)
@pytest.mark.parametrize("n", [1, 2, 3, 27, 65, 66, 70])
def test_c_slot_matches_rule_and_clamps(v, n):
    assert c_log2_slot(v, n) == rule_slot(v, n)


def test_u64_max_needs_66_slots():
    assert c_log2_slot(U64_MAX, 1000) == LOG2_COMPLETE_SLOTS - 1


@settings(max_examples=500)
@given(st.integers(0, U64_MAX), st.integers(1, 80))
def test_c_slot_matches_rule(v, n):
    assert c_log2_slot(v, n) == rule_slot(v, n)


@settings(max_examples=300)
@given(st.integers(0, 64).flatmap(lambda e: st.integers(max(0, 2**e - 2), min(U64_MAX, 2**e + 2))))
def test_c_slot_matches_rule_near_powers_of_two(v):
    assert c_log2_slot(v, 70) == rule_slot(v, 70)


# ---- classic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("slots, scheme, scale, expected", [
    ([0], "log2", 1.0, [(INF, 0)]),
    ([5], "log2", 1.0, [(INF, 5)]),
    ([1, 2, 3], "log2", 1.0, [(0.0, 1), (1.0, 3), (INF, 6)]),
    ([1, 0, 0, 4, 1], "log2", 1.0, [(0.0, 1), (1.0, 1), (2.0, 1), (4.0, 5), (INF, 6)]),
    ([0, 0, 0, 0], "log2", 1e-6, [(0.0, 0), (1e-6, 0), (2e-6, 0), (INF, 0)]),
    ([0, 1, 0, 2], "log2", 2.0**-10, [(0.0, 0), (2.0**-10, 1), (2.0**-9, 1), (INF, 3)]),
    ([1, 2, 3], Scheme("linear", 10, 5), 1.0, [(14.0, 1), (19.0, 3), (INF, 6)]),
    ([1, 2, 3], BucketSpec("linear", "slots", 0, 10), 0.001, [(9 * 0.001, 1), (19 * 0.001, 3), (INF, 6)]),
    ([7, 0], Scheme("linear", 0, 1), 1.0, [(0.0, 7), (INF, 7)]),
])
def test_classic_buckets(slots, scheme, scale, expected):
    assert classic_buckets(slots, scheme, scale) == expected


@pytest.mark.parametrize("scheme", [LOG2, BucketSpec("log2", "slots"), Scheme("linear", 3, 7)])
@pytest.mark.parametrize("n", [1, 2, 27, 66])
@pytest.mark.parametrize("scale", [1.0, 1e-6, 2.0**-20, 1e-9])
def test_classic_bounds_are_the_plans_bounds(scheme, n, scale):
    bounds = [b for b, _ in classic_buckets([0] * n, scheme, scale)]
    assert bounds == [*upper_bounds(scheme, n, scale), INF]


@pytest.mark.parametrize("v", EDGE_VALUES)
@pytest.mark.parametrize("n", [1, 27, 66])
def test_classic_le_holds_exactly_the_values_up_to_the_bound(v, n):
    buckets = classic_buckets(observe([v], n), LOG2, 1.0)
    for bound, cumulative in buckets:
        assert cumulative == (1 if v <= bound else 0), (bound, cumulative)


@settings(max_examples=300)
@given(st.lists(st.integers(0, U64_MAX), max_size=40), st.integers(1, 70))
def test_classic_counts_every_value_at_or_below_each_bound(values, n):
    buckets = classic_buckets(observe(values, n), LOG2, 1.0)
    assert buckets[-1] == (INF, len(values))
    for bound, cumulative in buckets[:-1]:
        assert cumulative == sum(1 for v in values if v <= int(bound))


def test_classic_rejects_a_bare_linear_name():
    with pytest.raises(ValueError, match="min and width"):
        classic_buckets([1], "linear", 1.0)


# ---- explicit (OTel) --------------------------------------------------------------------------

@pytest.mark.parametrize("slots, mn, width, scale, expected", [
    ([4], 0, 10, 1.0, Explicit([], [4])),
    ([1, 2, 3], 0, 10, 1.0, Explicit([9.0, 19.0], [1, 2, 3])),
    ([0, 0, 5, 0], 100, 50, 0.001, Explicit([149 * 0.001, 199 * 0.001, 249 * 0.001], [0, 0, 5, 0])),
])
def test_explicit(slots, mn, width, scale, expected):
    assert explicit(slots, mn, width, scale) == expected


def test_explicit_buckets_log2_is_the_classic_histogram_uncumulated():
    slots = [3, 0, 1, 4, 0, 2]
    e = explicit_buckets(slots, LOG2, 1e-6)
    assert e.counts == slots
    assert [*e.bounds, INF] == [b for b, _ in classic_buckets(slots, LOG2, 1e-6)]


# ---- exponential (OTel) -----------------------------------------------------------------------

@pytest.mark.parametrize("slots, scale, expected", [
    ([0] * 66, 1.0, Exponential(0, 0, [])),
    ([9] + [0] * 65, 1.0, Exponential(9, 0, [])),
    ([0, 1] + [0] * 64, 1.0, Exponential(0, -1, [1])),                  # {1} = (0.5, 1]
    ([0, 0, 1] + [0] * 63, 1.0, Exponential(0, 0, [1])),                # {2} = (1, 2]
    ([0, 0, 0, 2] + [0] * 62, 1.0, Exponential(0, 1, [2])),             # {3, 4} = (2, 4]
    ([1, 2, 0, 0, 3] + [0] * 61, 1.0, Exponential(1, -1, [2, 0, 0, 3])),
    ([0] * 65 + [7], 1.0, Exponential(0, 63, [7])),                     # (2^63, 2^64]
    ([0, 1, 1] + [0] * 63, 2.0**-10, Exponential(0, -11, [1, 1])),
    ([0, 1, 1] + [0] * 63, 8.0, Exponential(0, 2, [1, 1])),
    ([0, 0, 1, 0], 1.0, Exponential(0, 0, [1])),                        # overflow slot empty
])
def test_exponential(slots, scale, expected):
    assert exponential(slots, "log2", scale) == expected


@pytest.mark.parametrize("v", [v for v in EDGE_VALUES if v])
def test_exponential_index_is_the_otel_sdks(v):
    e = exponential(observe([v], 66))
    assert e.counts == [1] and e.zero_count == 0
    assert e.offset == exact_index(v) - 1                   # OTel: (2^i, 2^(i+1)]
    if exact_float(v):
        assert e.offset == OTEL.map_to_index(float(v))


@settings(max_examples=300)
@given(st.lists(EXACT_U64, max_size=40), st.integers(0, 20))
def test_exponential_matches_the_otel_sdk(values, shift):
    scale = 2.0 ** -shift
    e = exponential(observe(values, 66), "log2", scale)
    got = {e.offset + i: c for i, c in enumerate(e.counts) if c}
    want = Counter(OTEL.map_to_index(v * scale) for v in values if v)
    assert got == dict(want)
    assert e.zero_count == values.count(0)
    if e.counts:
        assert e.counts[0] and e.counts[-1]            # trimmed at both ends


@pytest.mark.parametrize("slots, scheme, scale, match", [
    ([0, 1, 0], "log2", 1e-6, "not a power of two"),
    ([0, 0, 1], "log2", 1.0, "last of 3 slots"),
    ([0] * 26 + [1], "log2", 1.0, "last of 27 slots"),
    ([3], "log2", 1.0, "last of 1 slots"),
    ([1, 1], Scheme("linear", 0, 10), 1.0, "explicit"),
])
def test_exponential_refuses_to_guess(slots, scheme, scale, match):
    with pytest.raises(Inexact, match=match):
        exponential(slots, scheme, scale)


# ---- native (Prometheus) ----------------------------------------------------------------------

def N(zero, spans, deltas) -> Native:
    return Native(0, NATIVE_ZERO_THRESHOLD, zero, spans, deltas)


@pytest.mark.parametrize("slots, scale, expected", [
    ([0] * 66, 1.0, N(0, [], [])),
    ([5] + [0] * 65, 1.0, N(5, [], [])),
    ([0, 1] + [0] * 64, 1.0, N(0, [(0, 1)], [1])),                      # {1} = (0.5, 1]: index 0
    ([0, 0, 1] + [0] * 63, 1.0, N(0, [(1, 1)], [1])),                   # {2} = (1, 2]: index 1
    ([0, 0, 0, 4] + [0] * 62, 1.0, N(0, [(2, 1)], [4])),                # {3, 4} = (2, 4]: index 2
    ([0] * 65 + [3], 1.0, N(0, [(64, 1)], [3])),                        # (2^63, 2^64]: index 64
    # contiguous run: one span, deltas against the previous bucket
    ([2, 3, 5, 4] + [0] * 62, 1.0, N(2, [(0, 3)], [3, 2, -1])),
    # sparse: slots 1, 2, 5, 9 -> indices 0, 1, 4, 8: spans (0,2) gap 2 (4,1)... offsets are gaps
    ([0, 1, 2, 0, 0, 7, 0, 0, 0, 1] + [0] * 56, 1.0, N(0, [(0, 2), (2, 1), (3, 1)], [1, 1, 5, -6])),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9] + [0] * 54, 1.0, N(0, [(10, 1)], [9])),
    # power-of-two scales shift every index by log2(scale)
    ([0, 1, 1] + [0] * 63, 2.0**-10, N(0, [(-10, 2)], [1, 0])),
    ([1, 0, 0, 1] + [0] * 62, 1024.0, N(1, [(12, 1)], [1])),
    # fewer than 66 slots is fine while the overflow slot is empty
    ([1, 1, 0, 0], 1.0, N(1, [(0, 1)], [1])),
])
def test_native(slots, scale, expected):
    assert native(slots, scale) == expected


@pytest.mark.parametrize("v", EDGE_VALUES)
def test_native_index_is_client_golangs(v):
    n = native(observe([v], 66))
    if v == 0:
        assert (n.zero_count, n.positive_spans) == (1, [])
        return
    assert native_buckets(n) == {exact_index(v): 1}            # (2^(i-1), 2^i], exactly
    if exact_float(v):
        assert native_buckets(n) == {prom_native_index(float(v)): 1}


def test_integers_beyond_float_precision_are_bucketed_exactly():
    """2^63 + 1 is above 2^63, so it is in (2^63, 2^64]. A float64 client rounds it to 2^63
    first and would count it one bucket lower; the BPF side counts the integer."""
    v = 2**63 + 1
    assert native_buckets(native(observe([v], 66))) == {64: 1}
    assert prom_native_index(float(v)) == 63


@settings(max_examples=300)
@given(st.lists(st.integers(0, U64_MAX), max_size=40))
def test_native_indices_are_exact_for_every_u64(values):
    n = native(observe(values, 66))
    assert native_buckets(n) == dict(Counter(exact_index(v) for v in values if v))


@settings(max_examples=300)
@given(st.lists(EXACT_U64, max_size=40), st.integers(-30, 30))
def test_native_matches_client_golang(values, k):
    scale = 2.0**k
    n = native(observe(values, 66), scale)
    assert n.zero_count == values.count(0)
    assert native_buckets(n) == dict(Counter(prom_native_index(v * scale) for v in values if v))
    assert n.zero_count + sum(native_buckets(n).values()) == len(values)
    # spans: first offset is an index, later ones are gaps (> 0: adjacent buckets share a span)
    assert all(length > 0 for _, length in n.positive_spans)
    assert all(offset > 0 for offset, _ in n.positive_spans[1:])
    assert sum(length for _, length in n.positive_spans) == len(n.positive_deltas)


@settings(max_examples=200)
@given(st.lists(st.integers(0, U64_MAX), max_size=30), st.integers(1, 65))
def test_native_is_exact_or_refuses(values, n):
    slots = observe(values, n)
    if slots[-1]:
        with pytest.raises(Inexact):
            native(slots)
        with pytest.raises(Inexact):
            exponential(slots)
    else:                                               # nothing was clamped: every slot is exact
        got = native(slots)
        assert native_buckets(got) == dict(Counter(exact_index(v) for v in values if v))


def test_native_zero_threshold_is_below_the_smallest_value():
    smallest = 2.0**-127                                # scale 2^-127, value 1
    assert NATIVE_ZERO_THRESHOLD < smallest
    assert native([0, 1, 0], 2.0**-127).positive_spans == [(-127, 1)]
    with pytest.raises(Inexact):
        native([0, 1, 0], 2.0**-128)


@pytest.mark.parametrize("scale, k", [
    (1.0, 0), (2.0, 1), (0.5, -1), (1024.0, 10), (2.0**-20, -20), (2.0**-1074, -1074),
    (1e-6, None), (1e-9, None), (3.0, None), (0.0, None), (-1.0, None), (INF, None), (math.nan, None),
])
def test_power_of_two_exponent(scale, k):
    assert power_of_two_exponent(scale) == k


@pytest.mark.parametrize("scheme, n, scale, reason", [
    ("log2", 66, 1.0, None),
    ("log2", 80, 2.0**-10, None),
    (BucketSpec("log2", "slots"), 66, 1.0, None),
    ("log2", 27, 1.0, "27 slots"),
    ("log2", 66, 1e-6, "not a power of two"),
    ("log2", 27, 1e-6, "not a power of two"),          # the built-ins today
    (Scheme("linear", 0, 10), 66, 1.0, "linear"),
])
def test_why_not_exponential(scheme, n, scale, reason):
    got = why_not_exponential(scheme, n, scale)
    assert got is None if reason is None else reason in got


@settings(max_examples=200)
@given(st.lists(st.integers(0, U64_MAX), max_size=30), st.integers(1, 80),
       st.sampled_from([1.0, 2.0**-10, 4.0, 1e-6]))
def test_plan_level_answer_means_no_data_can_be_inexact(values, n, scale):
    """why_not_exponential() == None promises native() and exponential() never raise."""
    if why_not_exponential("log2", n, scale) is None:
        slots = observe(values, n)
        native(slots, scale)
        exponential(slots, "log2", scale)


# ---- the series a caller hands to the exposition ---------------------------------------------

def test_prometheus_series():
    slots = [1, 2, 0, 3] + [0] * 62
    h = prometheus_series(labels(disk="vda", op="read"), slots, 20, "log2", 1.0, with_native=True)
    assert h.labels.pairs() == (("disk", "vda"), ("op", "read"))
    assert h.buckets == classic_buckets(slots, "log2", 1.0)
    assert (h.count, h.sum) == (6, 20.0)
    assert h.native == native(slots, 1.0)


def test_prometheus_series_scales_the_sum_and_may_have_none():
    h = prometheus_series(EMPTY, [0, 4, 0], 123, "log2", 1e-6, with_native=False)
    assert h.sum == pytest.approx(123e-6) and h.native is None and h.count == 4
    assert prometheus_series(EMPTY, [0, 4, 0], None, "log2", 1.0, with_native=False).sum is None


def test_prometheus_series_refuses_native_it_cannot_make_exactly():
    with pytest.raises(Inexact):
        prometheus_series(EMPTY, [0, 4, 0], 5, "log2", 1e-6, with_native=True)
