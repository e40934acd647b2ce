"""exporter.otlp.metrics: Snapshots built from synthetic BTF and hand-packed map bytes →
MetricsData, checked point by point against the Prometheus path's own Families, against the
OpenTelemetry SDK's scale-0 bucket mapping, and through the real OTLP protobuf encoder."""
from __future__ import annotations

import importlib.util
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics._internal.exponential_histogram.mapping.exponent_mapping import (
    ExponentMapping,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality, ExponentialHistogram, Gauge, Histogram, Sum,
)
from opentelemetry.sdk.resources import Resource

from core.binding import bind
from exporter.collect import MetricCollector
from exporter.otlp.metrics import MetricsConverter, temporalities, unit_of
from exporter.snapshot import MapData, ProgramSnapshot, Snapshot


def _load_synth_btf():
    path = Path(__file__).resolve().parent.parent / "core" / "synth_btf.py"
    spec = importlib.util.spec_from_file_location("otlp_tests_synth_btf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


synth = _load_synth_btf()
CUM, DELTA = AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA
SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC          # program load time
RESOURCE = Resource({"service.name": "bpfleet-exporter", "host.name": "h"})
NCPUS = 2

MANIFEST = '''
[[metrics]]
name = "demo_calls_total"
type = "counter"
help = "Calls by command and op"
map = "calls"

[[metrics]]
name = "demo_queue_depth"
type = "gauge"
help = "Queue depth per slot"
map = "depth"

[[metrics]]
name = "demo_cpu_ticks_total"
type = "counter"
help = "Ticks per CPU"
map = "ticks"
per_cpu = "cpu"

[[metrics]]
name = "demo_size_bytes"
type = "histogram"
help = "Sizes, 66 log2 slots: exact exponential"
map = "sizes"
buckets = { scheme = "log2", field = "slots" }
sum = "sum"

[[metrics]]
name = "demo_wait_seconds"
type = "histogram"
help = "Waits, 2^-20 s units: exact exponential in seconds"
map = "sizes"
buckets = { scheme = "log2", field = "slots" }
sum = "sum"
scale = 9.5367431640625e-07

[[metrics]]
name = "demo_latency_seconds"
type = "histogram"
help = "Latency, 6 log2 slots in us: explicit buckets"
map = "lat"
buckets = { scheme = "log2", field = "slots" }
sum = "sum"
scale = 1e-6

[[metrics]]
name = "demo_len"
type = "histogram"
help = "Lengths, linear: explicit buckets"
map = "lens"
buckets = { scheme = "linear", field = "slots", min = 0, width = 10 }
'''


@dataclass
class Artifact:
    name: str
    version: str
    digest: str = "ab" * 32


class FakeProgram:
    """What the converter needs of a LoadedProgram: name, artifact, loaded_at, collectors."""

    def __init__(self, plan, name="demo", version="1.2.3", loaded_at=T0 / SEC):
        self.plan = plan
        self.artifact = Artifact(name, version)
        self.loaded_at = loaded_at
        self.collectors = [(MetricCollector(mp, NCPUS), mp.source) for mp in plan.metrics]

    @property
    def name(self):
        return self.artifact.name


@pytest.fixture(scope="module")
def plan():
    b = synth.Btf()
    comm_op = b.struct("comm_op", [("comm", b.array(b.char, 8)), ("op", b.u32)])
    sizes = b.struct("sizes", [("slots", b.array(b.u64, 66)), ("sum", b.u64)])
    lat = b.struct("lat", [("slots", b.array(b.u64, 6)), ("sum", b.u64)])
    lens = b.struct("lens", [("slots", b.array(b.u32, 4))])
    maps = [b.map("calls", "hash", comm_op, b.u64), b.map("depth", "array", b.u32, b.u32, 4),
            b.map("ticks", "percpu_array", b.u32, b.u64, 2), b.map("sizes", "hash", b.u32, sizes),
            b.map("lat", "hash", b.u32, lat), b.map("lens", "array", b.u32, lens, 1)]
    p, problems = bind(synth.manifest(MANIFEST), synth.maps_dict(*maps), b.records, [])
    assert problems == [], [str(x) for x in problems]
    return p


# ---- map contents, packed as a batch lookup returns them ----

def calls(entries: dict) -> MapData:
    keys = b"".join(struct.pack("<8sI", c.encode(), op) for c, op in entries)
    return MapData(keys, b"".join(struct.pack("<Q", v) for v in entries.values()), len(entries))


def depth(values: list) -> MapData:
    return MapData(b"".join(struct.pack("<I", i) for i in range(len(values))),
                   b"".join(struct.pack("<I", v) for v in values), len(values))


def ticks(rows: list) -> MapData:
    return MapData(b"".join(struct.pack("<I", i) for i in range(len(rows))),
                   b"".join(struct.pack(f"<{NCPUS}Q", *r) for r in rows), len(rows))


def sizes(entries: dict) -> MapData:
    vals = b""
    for slots, total in entries.values():
        vals += struct.pack("<66QQ", *(list(slots) + [0] * (66 - len(slots))), total)
    return MapData(b"".join(struct.pack("<I", k) for k in entries), vals, len(entries))


def lat(entries: dict) -> MapData:
    vals = b"".join(struct.pack("<6QQ", *slots, total) for slots, total in entries.values())
    return MapData(b"".join(struct.pack("<I", k) for k in entries), vals, len(entries))


def lens(slots: list) -> MapData:
    return MapData(struct.pack("<I", 0), struct.pack("<4I", *slots), 1)


BASE_MAPS = {
    "calls": {("sh", 1): 5, ("cat", 2): 7},
    "depth": [0, 3, 0, 9],
    "ticks": [(1, 2), (0, 0)],
    "sizes": {1: ([2, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1], 700), 2: ([0] * 66, 0)},
    "lat": {7: ([1, 2, 0, 2, 0, 0], 9)},
    "lens": [1, 0, 2, 3],
}
PACK = {"calls": calls, "depth": depth, "ticks": ticks, "sizes": sizes, "lat": lat, "lens": lens}


def snapshot(program, t, **changes) -> Snapshot:
    contents = dict(BASE_MAPS, **changes)
    maps = {name: PACK[name](v) for name, v in contents.items()}
    return Snapshot(t, t / SEC, (ProgramSnapshot(program, maps),), (), 0.0)


def by_name(push) -> dict:
    (rm,) = push.data.resource_metrics
    (sm,) = rm.scope_metrics
    return {m.name: m for m in sm.metrics}


def point(metric, **attrs):
    want = {k: str(v) for k, v in attrs.items()}
    (p,) = [p for p in metric.data.data_points if dict(p.attributes) == want]
    return p


def prometheus(program, snap, name):
    """The Prometheus path's Family of metric `name` for the same snapshot."""
    (ps,) = snap.programs
    for c, m in program.collectors:
        if c.spec.name == name:
            d = ps.maps[m]
            return c.family(memoryview(d.keys), memoryview(d.values), d.count)
    raise KeyError(name)


# ---------------------------------------------------------------- structure

def test_resource_scope_and_kinds(plan):
    prog = FakeProgram(plan)
    push = MetricsConverter(RESOURCE).convert(snapshot(prog, T0 + 5 * SEC))
    (rm,) = push.data.resource_metrics
    assert rm.resource is RESOURCE
    (sm,) = rm.scope_metrics
    assert (sm.scope.name, sm.scope.version) == ("demo", "1.2.3")
    assert dict(sm.scope.attributes) == {"bpfleet.program.digest": "ab" * 32}
    m = by_name(push)
    kinds = {n: type(x.data) for n, x in m.items()}
    assert kinds == {"demo_calls_total": Sum, "demo_queue_depth": Gauge, "demo_cpu_ticks_total": Sum,
                     "demo_size_bytes": ExponentialHistogram, "demo_wait_seconds": ExponentialHistogram,
                     "demo_latency_seconds": Histogram, "demo_len": Histogram}
    assert m["demo_calls_total"].data.is_monotonic
    assert all(x.data.aggregation_temporality == CUM for x in m.values() if not isinstance(x.data, Gauge))
    assert {n: x.unit for n, x in m.items()} == {
        "demo_calls_total": "", "demo_queue_depth": "", "demo_cpu_ticks_total": "",
        "demo_size_bytes": "By", "demo_wait_seconds": "s", "demo_latency_seconds": "s", "demo_len": ""}
    assert m["demo_calls_total"].description == "Calls by command and op"
    assert all(p.time_unix_nano == T0 + 5 * SEC for x in m.values() for p in x.data.data_points)


def test_every_value_equals_the_prometheus_sample(plan):
    prog = FakeProgram(plan)
    snap = snapshot(prog, T0 + SEC)
    m = by_name(MetricsConverter(RESOURCE).convert(snap))
    for name in ("demo_calls_total", "demo_queue_depth", "demo_cpu_ticks_total"):
        fam = prometheus(prog, snap, name)
        prom = {tuple(sorted(lbl.pairs())): v for _s, lbl, v in fam.all_samples()}
        otel = {tuple(sorted(p.attributes.items())): p.value for p in m[name].data.data_points}
        assert otel == prom and prom, name
    assert point(m["demo_calls_total"], comm="cat", op=2).value == 7
    # array slots that are zero are not series, in either output
    assert {p.attributes["key"]: p.value for p in m["demo_queue_depth"].data.data_points} == {"1": 3, "3": 9}
    assert {(p.attributes["key"], p.attributes["cpu"]): p.value
            for p in m["demo_cpu_ticks_total"].data.data_points} == {("0", "0"): 1, ("0", "1"): 2}


def test_gauge_points_have_no_start(plan):
    m = by_name(MetricsConverter(RESOURCE).convert(snapshot(FakeProgram(plan), T0 + SEC)))
    assert all(p.start_time_unix_nano == 0 for p in m["demo_queue_depth"].data.data_points)


def test_metric_without_series_is_left_out(plan):
    prog = FakeProgram(plan)
    push = MetricsConverter(RESOURCE).convert(snapshot(prog, T0 + SEC, calls={}, lens=[0, 0, 0, 0]))
    assert "demo_calls_total" not in by_name(push) and "demo_len" not in by_name(push)


def test_the_real_otlp_encoder_takes_it(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE, "delta")
    for t in (T0 + SEC, T0 + 2 * SEC):
        push = conv.convert(snapshot(prog, t))
        req = encode_metrics(push.data)
        conv.commit(push)
    (rm,) = req.resource_metrics
    (sm,) = rm.scope_metrics
    kinds = {m.name: m.WhichOneof("data") for m in sm.metrics}
    assert kinds["demo_size_bytes"] == "exponential_histogram" and kinds["demo_len"] == "histogram"
    lat_pb = next(m for m in sm.metrics if m.name == "demo_latency_seconds").histogram.data_points[0]
    assert lat_pb.HasField("sum") and not lat_pb.HasField("min") and not lat_pb.HasField("max")
    len_pb = next(m for m in sm.metrics if m.name == "demo_len").histogram.data_points[0]
    assert not len_pb.HasField("sum")      # the program keeps no sum: none is invented
    assert push.points == sum(len(x.data.data_points) for x in by_name(push).values())


# ---------------------------------------------------------------- histograms, exactly

def test_exponential_buckets_raw_unit(plan):
    prog = FakeProgram(plan)
    m = by_name(MetricsConverter(RESOURCE).convert(snapshot(prog, T0 + SEC)))
    p = point(m["demo_size_bytes"], key=1)
    # slots [2, 1, 0, 3, 0 ... slot 11: 1]: slot s >= 1 is index s-2, which covers (2^(s-2), 2^(s-1)]
    assert (p.scale, p.zero_count, p.positive.offset) == (0, 2, -1)
    assert list(p.positive.bucket_counts) == [1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1]
    assert (p.count, p.sum, p.flags) == (7, 700, 0)
    assert list(p.negative.bucket_counts) == [] and p.min is None and p.max is None
    # the empty histogram of key 2 is not a series (like the Prometheus path)
    assert [dict(q.attributes) for q in m["demo_size_bytes"].data.data_points] == [{"key": "1"}]


def test_exponential_buckets_follow_the_sdk_mapping_and_match_le(plan):
    """Every OTel bucket, by the SDK's own scale-0 mapping, holds exactly the values of one slot,
    and cumulating them gives the Prometheus `le` buckets one by one."""
    prog = FakeProgram(plan)
    snap = snapshot(prog, T0 + SEC)
    m = by_name(MetricsConverter(RESOURCE).convert(snap))
    mapping = ExponentMapping(0)
    for name, scale in (("demo_size_bytes", 1.0), ("demo_wait_seconds", 2.0 ** -20)):
        p = point(m[name], key=1)
        fam = prometheus(prog, snap, name)
        (hs,) = fam.histograms
        assert p.sum == hs.sum and p.count == hs.count
        le = [(0.0, p.zero_count)]
        running = p.zero_count
        for j, c in enumerate(p.positive.bucket_counts):
            i = p.positive.offset + j
            lower, upper = mapping.get_lower_boundary(i), mapping.get_lower_boundary(i + 1)
            assert mapping.map_to_index(upper) == i                # upper bound inclusive, like le
            assert mapping.map_to_index(lower) == i - 1            # lower bound exclusive
            running += c
            le.append((upper, running))
        prom = [(b, c) for b, c in hs.buckets if b != math.inf]
        # the Prometheus buckets go on (flat) past the last non-empty OTel bucket
        assert prom[: len(le)] == le, name
        assert all(c == running for _b, c in prom[len(le):]) and hs.buckets[-1] == (math.inf, running)
        assert le[1][0] == scale        # slot 1 (the value 1) is index -1+k: (0.5, 1] * 2^k


def test_explicit_buckets_are_the_le_bounds(plan):
    prog = FakeProgram(plan)
    snap = snapshot(prog, T0 + SEC)
    m = by_name(MetricsConverter(RESOURCE).convert(snap))
    for name, key in (("demo_latency_seconds", 7), ("demo_len", 0)):
        p = point(m[name], key=key)
        (hs,) = prometheus(prog, snap, name).histograms
        assert list(p.explicit_bounds) == [b for b, _c in hs.buckets[:-1]]
        cumulative = [sum(p.bucket_counts[: i + 1]) for i in range(len(p.bucket_counts))]
        assert cumulative == [c for _b, c in hs.buckets]
        assert p.count == hs.count and p.sum == hs.sum
    p = point(m["demo_latency_seconds"], key=7)
    assert list(p.explicit_bounds) == [0, 1e-06, 2e-06, 4e-06, 8e-06]
    assert list(p.bucket_counts) == [1, 2, 0, 2, 0, 0]
    p = point(m["demo_len"], key=0)
    assert (list(p.explicit_bounds), list(p.bucket_counts), p.sum) == ([9, 19, 29], [1, 0, 2, 3], None)


# ---------------------------------------------------------------- temporality and resets

def test_cumulative_start_is_the_program_load_and_stays(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE)
    for i, v in enumerate((5, 9, 9)):
        push = conv.convert(snapshot(prog, T0 + (i + 1) * SEC, calls={("sh", 1): v}))
        conv.commit(push)
        p = point(by_name(push)["demo_calls_total"], comm="sh", op=1)
        assert (p.start_time_unix_nano, p.value) == (T0, v)


def test_cumulative_reset_gets_a_new_start(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE)
    conv.convert(snapshot(prog, T0 + 10 * SEC, calls={("sh", 1): 50}))
    push = conv.convert(snapshot(prog, T0 + 20 * SEC, calls={("sh", 1): 3}))
    p = point(by_name(push)["demo_calls_total"], comm="sh", op=1)
    assert (p.start_time_unix_nano, p.value) == (T0 + 10 * SEC, 3)   # reset some time after 10 s
    push = conv.convert(snapshot(prog, T0 + 30 * SEC, calls={("sh", 1): 4}))
    assert point(by_name(push)["demo_calls_total"], comm="sh", op=1).start_time_unix_nano == T0 + 10 * SEC


def test_reload_resets_at_the_new_load_time(plan):
    conv = MetricsConverter(RESOURCE)
    conv.convert(snapshot(FakeProgram(plan), T0 + 10 * SEC, calls={("sh", 1): 50}))
    again = FakeProgram(plan, loaded_at=(T0 + 15 * SEC) / SEC)
    push = conv.convert(snapshot(again, T0 + 20 * SEC, calls={("sh", 1): 2}))
    assert point(by_name(push)["demo_calls_total"], comm="sh", op=1).start_time_unix_nano == T0 + 15 * SEC


def test_delta_counts_since_the_last_successful_push(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE, "delta")
    seq = [(1, 5, True), (2, 8, True), (3, 20, False), (4, 21, True), (5, 21, True)]
    got = []
    for sec, v, delivered in seq:
        push = conv.convert(snapshot(prog, T0 + sec * SEC, calls={("sh", 1): v}))
        p = point(by_name(push)["demo_calls_total"], comm="sh", op=1)
        assert by_name(push)["demo_calls_total"].data.aggregation_temporality == DELTA
        got.append(((p.start_time_unix_nano - T0) // SEC, (p.time_unix_nano - T0) // SEC, p.value))
        if delivered:
            conv.commit(push)
    # the push at 3 s failed: the one at 4 s covers (2 s, 4 s], nothing is lost or counted twice
    assert got == [(0, 1, 5), (1, 2, 3), (2, 3, 12), (2, 4, 13), (4, 5, 0)]


def test_delta_reset_reports_the_new_value(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE, "delta")
    conv.commit(conv.convert(snapshot(prog, T0 + SEC, calls={("sh", 1): 40})))
    push = conv.convert(snapshot(prog, T0 + 2 * SEC, calls={("sh", 1): 6}))
    p = point(by_name(push)["demo_calls_total"], comm="sh", op=1)
    assert (p.start_time_unix_nano, p.value) == (T0 + SEC, 6)


def test_delta_new_series_counts_from_the_previous_push(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE, "delta")
    conv.commit(conv.convert(snapshot(prog, T0 + SEC, calls={("sh", 1): 1})))
    push = conv.convert(snapshot(prog, T0 + 2 * SEC, calls={("sh", 1): 1, ("vi", 3): 4}))
    p = point(by_name(push)["demo_calls_total"], comm="vi", op=3)
    assert (p.start_time_unix_nano, p.value) == (T0 + SEC, 4)


def test_delta_histograms_subtract_slot_by_slot(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE, "delta")
    first = {1: ([2, 1, 0, 3], 100), 2: ([0] * 66, 0)}
    second = {1: ([2, 4, 0, 3, 0, 0, 1], 150), 2: ([0] * 66, 0)}
    conv.commit(conv.convert(snapshot(prog, T0 + SEC, sizes=first, lat={7: ([1, 0, 0, 0, 0, 0], 1)})))
    m = by_name(conv.convert(snapshot(prog, T0 + 2 * SEC, sizes=second, lat={7: ([1, 0, 3, 0, 0, 0], 10)})))
    p = point(m["demo_size_bytes"], key=1)
    assert (p.zero_count, p.positive.offset, list(p.positive.bucket_counts)) == (0, -1, [3, 0, 0, 0, 0, 1])
    assert (p.count, p.sum, p.start_time_unix_nano) == (4, 50, T0 + SEC)
    q = point(m["demo_latency_seconds"], key=7)
    assert (list(q.bucket_counts), q.count, q.sum) == ([0, 0, 3, 0, 0, 0], 3, pytest.approx(9e-6))
    assert m["demo_latency_seconds"].data.aggregation_temporality == DELTA


def test_lowmemory_is_cumulative_counters_and_delta_histograms(plan):
    assert temporalities("lowmemory") == (CUM, DELTA)
    assert temporalities("delta") == (DELTA, DELTA) and temporalities("cumulative") == (CUM, CUM)
    m = by_name(MetricsConverter(RESOURCE, "lowmemory").convert(snapshot(FakeProgram(plan), T0 + SEC)))
    assert m["demo_calls_total"].data.aggregation_temporality == CUM
    assert m["demo_size_bytes"].data.aggregation_temporality == DELTA


def test_state_only_for_series_still_there(plan):
    prog = FakeProgram(plan)
    conv = MetricsConverter(RESOURCE, "delta")
    many = {(f"c{i}", i): i + 1 for i in range(500)}
    conv.commit(conv.convert(snapshot(prog, T0 + SEC, calls=many)))
    big = sum(map(len, conv._series.values()))
    conv.commit(conv.convert(snapshot(prog, T0 + 2 * SEC, calls={("sh", 1): 1})))
    assert big >= 500 and sum(map(len, conv._series.values())) < 20
    # and a program that went away leaves nothing behind
    conv.convert(Snapshot(T0 + 3 * SEC, 3.0, (), (), 0.0))
    assert conv._series == {} and conv._views == {} and conv._program_start == {}


def test_decoding_state_is_not_shared_with_prometheus(plan):
    """The converter decodes with collectors of its own: /metrics's label caches stay untouched."""
    prog = FakeProgram(plan)
    MetricsConverter(RESOURCE).convert(snapshot(prog, T0 + SEC))
    assert all(c.cached_label_sets() == 0 for c, _m in prog.collectors)


def test_unit_of():
    assert [unit_of(n) for n in ("a_seconds", "b_bytes_total", "c_total", "fill_ratio", "x")] == \
        ["s", "By", "", "1", ""]


def test_state_stays_bounded_under_many_distinct_series(plan, monkeypatch):
    """Every push brings 2,000 label sets never seen before: the label sets (and the attributes
    they keep) stay within the cache limit plus the latest push, and the per-series state holds
    only the latest snapshot's series."""
    from core import series
    monkeypatch.setattr(series, "LABEL_CACHE_LIMIT", 1_000)
    prog, conv = FakeProgram(plan), MetricsConverter(RESOURCE)
    for round_ in range(10):
        entries = {(f"c{round_ * 2000 + i}", 1): 1 for i in range(2000)}
        push = conv.convert(snapshot(prog, T0 + (round_ + 1) * SEC, calls=entries))
        conv.commit(push)
        assert len(by_name(push)["demo_calls_total"].data.data_points) == 2000
        cached = sum(c.cached_label_sets() for v in conv._views.values() for c, _m, _e in v.metrics)
        assert 2000 <= cached <= 1_000 + 2000
        assert len(conv._series[("demo", "demo_calls_total")]) == 2000
