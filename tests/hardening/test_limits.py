"""Series limits (core/limits.py) and how MetricCollector applies them: a metric never has
more than max_series series, the excess is added into one __overflow__ series (sums stay
right), the admitted series are sticky, and the exposition stays valid - for counters,
per-CPU splits and histograms, on the Prometheus path and the OTLP one."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from prometheus_client.parser import text_string_to_metric_families

from core.manifest import parse as parse_manifest
from core.binding import bind
from exporter.collect import MetricCollector
from exporter.exposition.text import render
from core.limits import DEFAULT_MAX_SERIES, OVERFLOW, SeriesLimit, effective_max_series
from core.series import labels
from exporter.otlp.metrics import MetricsConverter
from exporter.snapshot import MapData, ProgramSnapshot, Snapshot


def _synth():
    path = Path(__file__).resolve().parent.parent / "core" / "synth_btf.py"
    spec = importlib.util.spec_from_file_location("hardening_synth_btf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


synth = _synth()

MANIFEST = '''
[[metrics]]
name = "demo_calls_total"
type = "counter"
help = "Calls by command and op"
map = "calls"
max_series = 4

[[metrics]]
name = "demo_scaled_seconds_total"
type = "counter"
help = "Scaled"
map = "calls"
scale = 1e-9

[[metrics]]
name = "demo_ticks_total"
type = "counter"
help = "Per CPU"
map = "ticks"
per_cpu = "cpu"
max_series = 3

[[metrics]]
name = "demo_len"
type = "histogram"
help = "Lengths"
map = "lens"
buckets = { scheme = "linear", field = "slots", min = 0, width = 10 }
sum = "sum"
max_series = 2
'''
NCPUS = 2


@pytest.fixture(scope="module")
def plan():
    b = synth.Btf()
    comm_op = b.struct("comm_op", [("comm", b.array(b.char, 8)), ("op", b.u32)])
    lens = b.struct("lens", [("slots", b.array(b.u64, 3)), ("sum", b.u64)])
    maps = [b.map("calls", "hash", comm_op, b.u64), b.map("ticks", "percpu_hash", b.u32, b.u64),
            b.map("lens", "hash", b.u32, lens)]
    p, problems = bind(synth.manifest(MANIFEST), synth.maps_dict(*maps), b.records, [])
    assert problems == [], [str(x) for x in problems]
    return p


def calls(entries: dict) -> MapData:
    keys = b"".join(struct.pack("<8sI", c.encode(), op) for c, op in entries)
    return MapData(keys, b"".join(struct.pack("<Q", v) for v in entries.values()), len(entries))


def ticks(rows: dict) -> MapData:
    return MapData(b"".join(struct.pack("<I", k) for k in rows),
                   b"".join(struct.pack(f"<{NCPUS}Q", *r) for r in rows.values()), len(rows))


def lens(entries: dict) -> MapData:
    vals = b"".join(struct.pack("<3QQ", *slots, total) for slots, total in entries.values())
    return MapData(b"".join(struct.pack("<I", k) for k in entries), vals, len(entries))


def fam(c: MetricCollector, d: MapData):
    return c.family(memoryview(d.keys), memoryview(d.values), d.count)


def collector(plan, name) -> MetricCollector:
    (mp,) = [m for m in plan.metrics if m.spec.name == name]
    return MetricCollector(mp, NCPUS)


def parsed(families) -> dict:
    text = render(families).decode()
    out = {}
    for f in text_string_to_metric_families(text):
        for s in f.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


# ---------------------------------------------------------------- SeriesLimit

def test_under_the_limit_is_untouched():
    lim = SeriesLimit(3, ["a"])
    s = [("", labels(a="1"), 1), ("", labels(a="2"), 2), ("", labels(a="3"), 3)]
    assert lim.samples(s) is s
    assert (lim.folded, lim.dropped_total) == (0, 0)


def test_fold_keeps_max_minus_one_and_sums_the_rest():
    lim = SeriesLimit(3, ["a", "b"])
    s = [("", labels(a=i, b="x"), i) for i in range(1, 11)]
    out = lim.samples(s)
    assert len(out) == 3
    assert out[-1] == ("", labels(a=OVERFLOW, b=OVERFLOW), sum(range(3, 11)))
    assert sum(v for _s, _l, v in out) == sum(range(1, 11))
    assert (lim.folded, lim.dropped_total) == (8, 8)


def test_admitted_series_are_sticky_and_new_ones_counted_once():
    lim = SeriesLimit(3, ["a"])
    first = [("", labels(a="x"), 1), ("", labels(a="y"), 1), ("", labels(a="z"), 1), ("", labels(a="w"), 1)]
    kept = {lbl for _s, lbl, _v in lim.samples(first)} - {lim.overflow}
    assert kept == {labels(a="x"), labels(a="y")}
    # The map's order changes, a new key arrives: x and y keep their series.
    again = [("", labels(a="v"), 1), ("", labels(a="w"), 1), ("", labels(a="z"), 1), ("", labels(a="y"), 1),
             ("", labels(a="x"), 1)]
    assert {lbl for _s, lbl, _v in lim.samples(again)} - {lim.overflow} == kept
    assert (lim.folded, lim.dropped_total) == (3, 3)   # z, w, then v new
    # x goes away: its room goes to a folded one; nothing new is kept out.
    out = lim.samples(again[:-1])
    assert len(out) == 3 and labels(a="y") in {lbl for _s, lbl, _v in out}
    assert lim.dropped_total == 3
    # Back under the limit: nothing folded.
    lim.samples(again[:2])
    assert lim.folded == 0


def test_limit_one_folds_everything_into_the_overflow():
    lim = SeriesLimit(1, ["a"])
    out = lim.samples([("", labels(a="1"), 1), ("", labels(a="2"), 2)])
    assert out == [("", labels(a="__overflow__"), 3)]


def test_a_real_series_named_overflow_is_added_in_not_duplicated():
    lim = SeriesLimit(2, ["a"])
    s = [("", labels(a="__overflow__"), 5), ("", labels(a="1"), 1), ("", labels(a="2"), 2)]
    out = lim.samples(s)
    assert out == [("", labels(a="__overflow__"), 8)]


def test_float_overflow_sum_does_not_depend_on_order():
    lim = SeriesLimit(2, ["a"])
    vals = [0.1, 0.7, 1e-9, 3.3, 1e16, -1e16, 2.2]
    s = [("", labels(a=i), v) for i, v in enumerate(vals)]
    a = lim.samples([s[0]] + s[1:])[-1][2]
    b = SeriesLimit(2, ["a"]).samples([s[0]] + s[1:][::-1])[-1][2]
    assert a == b


def test_invalid_limit():
    with pytest.raises(ValueError):
        SeriesLimit(0)


# ---------------------------------------------------------------- MetricCollector

def test_manifest_limit_and_default(plan):
    by = {m.spec.name: m for m in plan.metrics}
    assert effective_max_series(by["demo_calls_total"]) == 4
    assert effective_max_series(by["demo_scaled_seconds_total"]) == DEFAULT_MAX_SERIES


def test_counter_folds_and_renders_valid(plan):
    c = collector(plan, "demo_calls_total")
    entries = {(f"c{i}", i % 3): i + 1 for i in range(20)}
    out = parsed([fam(c, calls(entries))])
    assert len(out) == 4
    over = out[("demo_calls_total", (("comm", OVERFLOW), ("op", OVERFLOW)))]
    assert sum(out.values()) == sum(entries.values()) and over > 0
    assert c.limit.folded == 17


def test_override_reaches_copies_of_the_plan(plan):
    """The host's max_series lives in the collector's plan, so the OTLP export's collectors
    (built from that plan) get it too."""
    c = collector(plan, "demo_calls_total")
    c.set_max_series(10)
    assert c.limit.max == 10 and c.plan.max_series == 10
    assert MetricCollector(c.plan, NCPUS).limit.max == 10
    c.set_max_series(4)   # back to the manifest's
    assert MetricCollector(c.plan, NCPUS).limit.max == 4


def test_per_cpu_split_counts_cpu_label_sets(plan):
    c = collector(plan, "demo_ticks_total")
    rows = {k: (k + 1, k + 2) for k in range(4)}   # 8 (key, cpu) series
    out = parsed([fam(c, ticks(rows))])
    assert len(out) == 3
    assert ("demo_ticks_total", (("cpu", OVERFLOW), ("key", OVERFLOW))) in out
    assert sum(out.values()) == sum(a + b for a, b in rows.values())


def test_histogram_folds_buckets_and_sums(plan):
    c = collector(plan, "demo_len")
    entries = {k: ([k, 1, 2], 10 * k) for k in range(1, 6)}
    f = fam(c, lens(entries))
    assert len(f.histograms) == 2
    label_sets = {h.labels.pairs() for h in f.histograms}
    assert (("key", OVERFLOW),) in label_sets
    assert sum(h.count for h in f.histograms) == sum(sum(s) for s, _t in entries.values())
    assert sum(h.sum for h in f.histograms) == sum(t for _s, t in entries.values())
    parsed([f])   # valid exposition


def test_otlp_gets_the_same_overflow(plan):
    class Art:
        name, version, digest = "demo", "1.0.0", "ab" * 32

    class Prog:
        artifact, loaded_at = Art(), 1_700_000_000.0
        name = "demo"
        collectors = [(MetricCollector(m, NCPUS), m.source) for m in plan.metrics]

    entries = {(f"c{i}", 0): i + 1 for i in range(9)}
    snap = Snapshot(1_700_000_001 * 10**9, 1.0, (ProgramSnapshot(Prog, {
        "calls": calls(entries), "ticks": ticks({}), "lens": lens({})}),), (), 0.0)
    push = MetricsConverter(Resource({})).convert(snap)
    (rm,) = push.data.resource_metrics
    (sm,) = rm.scope_metrics
    m = {x.name: x for x in sm.metrics}["demo_calls_total"]
    points = {tuple(sorted(p.attributes.items())): p.value for p in m.data.data_points}
    assert len(points) == 4
    assert points[(("comm", OVERFLOW), ("op", OVERFLOW))] == sum(range(4, 10))


def test_label_caches_are_bounded(plan, monkeypatch):
    """Keys that churn (pids) must not grow the decoded-label caches without bound."""
    from core import series
    monkeypatch.setattr(series, "LABEL_CACHE_LIMIT", 50)
    c = collector(plan, "demo_scaled_seconds_total")
    for round_ in range(10):
        fam(c, calls({(f"p{round_}-{i}", i): 1 for i in range(40)}))
        assert c.cached_label_sets() <= 80
        assert all(len(m) <= 50 for m in c.labels._by_field)


def test_manifest_max_series_must_be_positive():
    text = ('name = "d"\nversion = "1.0.0"\ndescription = "d"\nlicense = "GPL"\n'
            '[[metrics]]\nname = "d_total"\ntype = "counter"\nhelp = "h"\nmap = "m"\nmax_series = 0\n')
    m, problems = parse_manifest(text, "m.toml")
    assert m is None and [(p.field, p.message) for p in problems] == [
        ("metrics[0].max_series", "must be a positive integer, got 0")]
