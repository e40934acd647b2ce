"""Protobuf exposition (io.prometheus.client.MetricFamily, delimited), content negotiation, and
native histograms end to end.

The bytes are decoded by the real protobuf runtime, with message classes built at run time from
a FileDescriptorProto that mirrors prometheus/client_model's metrics.proto field for field
(numbers written out here, independently of the encoder), and must re-serialize to the very same
bytes: no unknown fields, no wrong wire types. Then a real Prometheus 2.42 scrapes them."""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.decoder import _DecodeVarint, _DecodeVarint32
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.exposition import proto as proto
from core.series import EMPTY, Family, LabelSet
from exporter.exposition.text import CONTENT_TYPE, PROTOBUF_CONTENT_TYPE, le_label, negotiate, render
from core.histograms import (
    NATIVE_ZERO_THRESHOLD, classic_buckets, native, native_buckets, prometheus_series,
)
from exporter.http_server import make_server

INF = math.inf
U64_MAX = 2**64 - 1
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# ---- client_model's metrics.proto, rebuilt at run time -------------------------------------

_F = descriptor_pb2.FieldDescriptorProto
OPT, REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
STRING, DOUBLE, UINT64, UINT32 = _F.TYPE_STRING, _F.TYPE_DOUBLE, _F.TYPE_UINT64, _F.TYPE_UINT32
INT64 = _F.TYPE_INT64
SINT32, SINT64, MESSAGE, ENUM = _F.TYPE_SINT32, _F.TYPE_SINT64, _F.TYPE_MESSAGE, _F.TYPE_ENUM
PKG = "io.prometheus.client"

# message -> [(field, number, label, type, type name)], from client_model io/prometheus/client/metrics.proto
METRICS_PROTO = {
    "LabelPair": [("name", 1, OPT, STRING, None), ("value", 2, OPT, STRING, None)],
    "Gauge": [("value", 1, OPT, DOUBLE, None)],
    "Counter": [("value", 1, OPT, DOUBLE, None)],
    "Untyped": [("value", 1, OPT, DOUBLE, None)],
    "Bucket": [("cumulative_count", 1, OPT, UINT64, None), ("upper_bound", 2, OPT, DOUBLE, None),
               ("cumulative_count_float", 4, OPT, DOUBLE, None)],
    "BucketSpan": [("offset", 1, OPT, SINT32, None), ("length", 2, OPT, UINT32, None)],
    "Histogram": [
        ("sample_count", 1, OPT, UINT64, None), ("sample_sum", 2, OPT, DOUBLE, None),
        ("bucket", 3, REP, MESSAGE, "Bucket"), ("sample_count_float", 4, OPT, DOUBLE, None),
        ("schema", 5, OPT, SINT32, None), ("zero_threshold", 6, OPT, DOUBLE, None),
        ("zero_count", 7, OPT, UINT64, None), ("zero_count_float", 8, OPT, DOUBLE, None),
        ("negative_span", 9, REP, MESSAGE, "BucketSpan"), ("negative_delta", 10, REP, SINT64, None),
        ("negative_count", 11, REP, DOUBLE, None), ("positive_span", 12, REP, MESSAGE, "BucketSpan"),
        ("positive_delta", 13, REP, SINT64, None), ("positive_count", 14, REP, DOUBLE, None),
    ],
    "Metric": [
        ("label", 1, REP, MESSAGE, "LabelPair"), ("gauge", 2, OPT, MESSAGE, "Gauge"),
        ("counter", 3, OPT, MESSAGE, "Counter"), ("untyped", 5, OPT, MESSAGE, "Untyped"),
        ("timestamp_ms", 6, OPT, INT64, None), ("histogram", 7, OPT, MESSAGE, "Histogram"),
    ],
    "MetricFamily": [("name", 1, OPT, STRING, None), ("help", 2, OPT, STRING, None),
                     ("type", 3, OPT, ENUM, "MetricType"), ("metric", 4, REP, MESSAGE, "Metric")],
}
METRIC_TYPE = {"COUNTER": 0, "GAUGE": 1, "SUMMARY": 2, "UNTYPED": 3, "HISTOGRAM": 4, "GAUGE_HISTOGRAM": 5}


def _message_classes() -> dict:
    fd = descriptor_pb2.FileDescriptorProto(name="bpfleet_test/metrics.proto", package=PKG, syntax="proto2")
    enum = fd.enum_type.add(name="MetricType")
    for name, number in METRIC_TYPE.items():
        enum.value.add(name=name, number=number)
    for msg_name, fields in METRICS_PROTO.items():
        m = fd.message_type.add(name=msg_name)
        for name, number, label, type_, type_name in fields:
            f = m.field.add(name=name, number=number, label=label, type=type_)
            if type_name:
                f.type_name = f".{PKG}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PKG}.{n}"))
            for n in METRICS_PROTO}


MSG = _message_classes()


def decode(body: bytes) -> list:
    """Delimited MetricFamily messages; each must re-serialize to exactly its bytes."""
    out, pos = [], 0
    while pos < len(body):
        n, pos = _DecodeVarint32(body, pos)
        raw = body[pos: pos + n]
        assert len(raw) == n, "truncated message"
        mf = MSG["MetricFamily"]()
        mf.ParseFromString(raw)
        assert mf.SerializeToString() == raw
        out.append(mf)
        pos += n
    return out


def labels_of(m) -> list[tuple[str, str]]:
    return [(lp.name, lp.value) for lp in m.label]


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ---- wire primitives --------------------------------------------------------------------------

@pytest.mark.parametrize("n, encoded", [
    (0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (2**32, "8080808010"),
    (U64_MAX, "ffffffffffffffffff01"),
])
def test_varint(n, encoded):
    assert proto.varint(n).hex() == encoded
    assert _DecodeVarint(proto.varint(n), 0) == (n, len(encoded) // 2)


@pytest.mark.parametrize("n", [-1, 2**64])
def test_varint_refuses_what_is_not_a_u64(n):
    with pytest.raises(ValueError):
        proto.varint(n)


@pytest.mark.parametrize("n, z", [
    (0, 0), (-1, 1), (1, 2), (-2, 3), (2**31 - 1, 2**32 - 2), (-(2**31), 2**32 - 1),
    (2**63 - 1, 2**64 - 2), (-(2**63), 2**64 - 1),
])
def test_zigzag(n, z):
    assert proto.zigzag(n) == z


LABEL_NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)


# ---- counters, gauges, untyped ----------------------------------------------------------------

def test_scalar_families_round_trip():
    families = [
        Family("syscalls_total", "counter", "Syscalls.\nBy name.", [
            ("", LabelSet.of([("name", "read")]), 7),
            ("", LabelSet.of([("name", 'we"ird\\'), ("cpu", "0")]), 2.5),
            ("", EMPTY, U64_MAX),
        ]),
        Family("empty", "gauge", "Nothing yet.", []),
        Family("temp", "gauge", "Ünïcode help €", [
            ("", LabelSet.of([("city", "Zürich")]), -INF),
            ("", LabelSet.of([("city", "東京\n")]), float("nan")),
            ("", EMPTY, -3),
            ("", LabelSet.of([("x", "b")]), True),
        ]),
        Family("thing", "untyped", "", [("", EMPTY, 0)]),
    ]
    body = proto.render(families)
    syscalls, temp, thing = decode(body)
    assert (syscalls.name, syscalls.help, syscalls.type) == ("syscalls_total", "Syscalls.\nBy name.", 0)
    assert [(labels_of(m), m.counter.value) for m in syscalls.metric] == [
        ([("name", "read")], 7.0), ([("name", 'we"ird\\'), ("cpu", "0")], 2.5), ([], float(U64_MAX))]
    assert all(m.HasField("counter") and not m.HasField("gauge") for m in syscalls.metric)
    assert (temp.name, temp.help, temp.type) == ("temp", "Ünïcode help €", 1)
    got = [(labels_of(m), m.gauge.value) for m in temp.metric]
    want = [([("city", "Zürich")], -INF), ([("city", "東京\n")], math.nan), ([], -3.0), ([("x", "b")], 1.0)]
    assert [g[0] for g in got] == [w[0] for w in want]
    assert all(same_float(g[1], w[1]) for g, w in zip(got, want))
    assert thing.type == 3 and thing.metric[0].HasField("untyped")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.lists(st.tuples(LABEL_NAMES, st.text()), max_size=4, unique_by=lambda p: p[0]),
    st.one_of(st.integers(0, U64_MAX), st.floats()),
), max_size=8), st.sampled_from(["counter", "gauge"]), st.text())
def test_scalar_families_round_trip_anything(series, type_, help_):
    family = Family("m", type_, help_, [("", LabelSet.of(pairs), v) for pairs, v in series])
    decoded = decode(proto.render([family]))
    if not series:
        assert decoded == []
        return
    [mf] = decoded
    assert mf.help == help_
    for (pairs, v), m in zip(series, mf.metric, strict=True):
        assert labels_of(m) == pairs
        assert same_float((m.counter if type_ == "counter" else m.gauge).value, float(v))


@pytest.mark.parametrize("family, match", [
    (Family("s", "summary", "", [("", EMPTY, 1)]), "summary"),
    (Family("c", "counter", "", [("_created", EMPTY, 1)]), "suffix"),
    (Family("h", "histogram", "", [("_max", EMPTY, 1)]), "suffix"),
])
def test_what_protobuf_cannot_carry_is_an_error(family, match):
    with pytest.raises(ValueError, match=match):
        proto.render([family])


# ---- histograms -------------------------------------------------------------------------------

def test_native_histogram_message():
    slots = [1, 2, 0, 4, 0, 0, 0, 1] + [0] * 58             # 0; 1, 1; 3..4 x4; 33..64
    h = prometheus_series(LabelSet.of([("disk", "vda"), ("op", "read")]), slots, 1000, "log2", 1.0, with_native=True)
    [mf] = decode(proto.render([Family("lat_us", "histogram", "Latency.", histograms=[h])]))
    assert (mf.name, mf.type) == ("lat_us", 4)
    [m] = mf.metric
    assert labels_of(m) == [("disk", "vda"), ("op", "read")]
    hist = m.histogram
    assert (hist.sample_count, hist.sample_sum) == (8, 1000.0)
    # classic buckets too (+Inf implicit), for Prometheus set to scrape classic histograms as well
    assert [(b.upper_bound, b.cumulative_count) for b in hist.bucket] == h.buckets[:-1]
    assert (hist.schema, hist.zero_threshold, hist.zero_count) == (0, NATIVE_ZERO_THRESHOLD, 1)
    assert [(s.offset, s.length) for s in hist.positive_span] == [(0, 1), (1, 1), (3, 1)]
    assert list(hist.positive_delta) == [2, 2, -3]
    assert native_buckets(native(slots)) == {0: 2, 2: 4, 6: 1}   # (0.5,1], (2,4], (32,64]
    for unused in ("negative_span", "negative_delta", "negative_count", "positive_count"):
        assert len(getattr(hist, unused)) == 0
    for unused in ("sample_count_float", "zero_count_float"):
        assert not hist.HasField(unused)


def test_empty_native_histogram_has_a_no_op_span():
    h = prometheus_series(EMPTY, [0] * 66, 0, "log2", 1.0, with_native=True)
    [mf] = decode(proto.render([Family("x", "histogram", "", histograms=[h])]))
    hist = mf.metric[0].histogram
    assert [(s.offset, s.length) for s in hist.positive_span] == [(0, 0)]
    assert hist.HasField("schema") and hist.zero_threshold > 0 and list(hist.positive_delta) == []


def test_negative_span_offsets_and_deltas_are_zigzag():
    h = prometheus_series(EMPTY, [0, 9, 1] + [0] * 63, 11, "log2", 2.0**-20, with_native=True)
    [mf] = decode(proto.render([Family("x", "histogram", "", histograms=[h])]))
    hist = mf.metric[0].histogram
    assert [(s.offset, s.length) for s in hist.positive_span] == [(-20, 2)]
    assert list(hist.positive_delta) == [9, -8]


def test_unknown_sum_is_nan_not_zero():
    h = prometheus_series(EMPTY, [0, 1, 0], None, "log2", 1.0, with_native=False)
    [mf] = decode(proto.render([Family("x", "histogram", "", histograms=[h])]))
    assert math.isnan(mf.metric[0].histogram.sample_sum)
    assert not mf.metric[0].histogram.HasField("schema")          # classic only


def test_classic_histogram_from_text_samples():
    """A histogram family as collect.py builds it today (text samples only) still encodes: as
    a classic histogram, with the labels and bounds the text carries."""
    base = [("disk", "vda")]
    lbl = LabelSet.of(base)
    buckets = classic_buckets([1, 2, 0, 3], "log2", 1e-6)
    samples = [("_bucket", LabelSet.of(base + [("le", le_label(b))]), c) for b, c in buckets]
    samples += [("_sum", lbl, 12e-6), ("_count", lbl, 6)]
    samples += [("_bucket", LabelSet.of([("le", "0.0")]), 0), ("_bucket", LabelSet.of([("le", "+Inf")]), 5),
                ("_count", EMPTY, 5)]
    [mf] = decode(proto.render([Family("lat_seconds", "histogram", "h", samples)]))
    first, second = mf.metric
    assert labels_of(first) == base
    assert [(b.upper_bound, b.cumulative_count) for b in first.histogram.bucket] == buckets[:-1]
    assert (first.histogram.sample_count, first.histogram.sample_sum) == (6, 12e-6)
    assert labels_of(second) == [] and second.histogram.sample_count == 5
    assert math.isnan(second.histogram.sample_sum)


def test_text_renders_histogram_series_like_collect_does():
    slots = [1, 2, 0, 3]
    h = prometheus_series(LabelSet.of([("disk", 'v"da')]), slots, 30, "log2", 1e-6, with_native=False)
    text = render([Family("lat_seconds", "histogram", "Latency.", histograms=[h])]).decode()
    assert text.splitlines() == [
        "# HELP lat_seconds Latency.",
        "# TYPE lat_seconds histogram",
        'lat_seconds_bucket{disk="v\\"da",le="0.0"} 1',
        'lat_seconds_bucket{disk="v\\"da",le="1e-06"} 3',
        'lat_seconds_bucket{disk="v\\"da",le="2e-06"} 3',
        'lat_seconds_bucket{disk="v\\"da",le="+Inf"} 6',
        f'lat_seconds_sum{{disk="v\\"da"}} {30 * 1e-6!r}',         # total * scale, as collect.py
        'lat_seconds_count{disk="v\\"da"} 6',
    ]


def test_bound_cache_stays_bounded():
    """Bucket bounds never seen before, far more than the cache holds (label sets keep their
    own encoding: core/series.py)."""
    for round_ in range(10):
        ids = range(round_ * 1000, (round_ + 1) * 1000)
        gauges = Family("g", "gauge", "", [("", LabelSet.of([("k", f"v{i}")]), i) for i in ids])
        hist = Family("h", "histogram", "", [
            *(("_bucket", LabelSet.of([("k", f"v{i}"), ("le", le_label(i + 0.5))]), 1) for i in ids),
            *(("_bucket", LabelSet.of([("k", f"v{i}"), ("le", "+Inf")]), 1) for i in ids),
            *(("_count", LabelSet.of([("k", f"v{i}")]), 1) for i in ids)])
        assert proto.render([gauges, hist])
        assert len(proto._bound_cache) <= 4096


def test_families_without_series_are_left_out():
    assert proto.render([Family("x", "counter", "", []), Family("h", "histogram", "", histograms=[])]) == b""


def test_several_families_are_delimited():
    fams = [Family(f"m{i}", "gauge", "", [("", EMPTY, i)]) for i in range(200)]   # lengths < and > 127
    fams.append(Family("big", "gauge", "x" * 300, [("", EMPTY, 1)]))
    decoded = decode(proto.render(fams))
    assert [mf.name for mf in decoded] == [f.name for f in fams]


# ---- content negotiation ----------------------------------------------------------------------

PROM_NATIVE_ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                      "encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,"
                      "application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROM_CLASSIC_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                       "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


@pytest.mark.parametrize("accept, formats, fmt", [
    (None, None, "text"),
    ("", None, "text"),
    ("*/*", None, "text"),
    ("text/plain", None, "text"),
    (PROM_NATIVE_ACCEPT, None, "protobuf"),
    (PROM_CLASSIC_ACCEPT, None, "text"),
    (PROM_NATIVE_ACCEPT, ("text",), "text"),
    ("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
     None, "protobuf"),
    ('application/vnd.google.protobuf;proto="io.prometheus.client.MetricFamily";encoding=delimited',
     None, "protobuf"),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text", None, "text"),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily", None, "text"),
    ("application/vnd.google.protobuf;proto=other.Message;encoding=delimited", None, "text"),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
     None, "text"),
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.3,"
     "text/plain;q=0.5", None, "text"),
    ("text/plain;q=0.5,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited;q=0.7", None, "protobuf"),
    ("text/plain,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
     "encoding=delimited", None, "text"),                       # a tie: the first listed wins
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=x",
     None, "text"),
])
def test_negotiate(accept, formats, fmt):
    assert (negotiate(accept) if formats is None else negotiate(accept, formats)) == fmt


class FakeExporter:
    def __init__(self, bodies: dict, formats=("text", "protobuf")):
        self.bodies, self.calls, self.accepts = bodies, [], []
        if formats is not None:
            self.formats = formats

    def scrape(self, *args):
        self.calls.append(args)
        return self.bodies[args[0] if args else "text"]

    def status(self):
        return {}


@contextmanager
def serving(exporter):
    server = make_server("127.0.0.1", 0, exporter)
    handler = server.RequestHandlerClass
    original = handler.do_GET

    def do_get(self):                                   # remember what scrapers asked for
        exporter.accepts.append(self.headers.get("Accept"))
        original(self)

    handler.do_GET = do_get
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def get(port: int, accept: str | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept is not None:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.headers.get("Content-Type"), r.headers.get("Vary"), r.read()


def test_http_serves_protobuf_when_asked():
    exp = FakeExporter({"text": b"t\n", "protobuf": b"\x00"})
    with serving(exp) as port:
        assert get(port, PROM_NATIVE_ACCEPT) == (PROTOBUF_CONTENT_TYPE, "Accept", b"\x00")
        assert get(port, PROM_CLASSIC_ACCEPT) == (CONTENT_TYPE, "Accept", b"t\n")
        assert get(port) == (CONTENT_TYPE, "Accept", b"t\n")
    assert exp.calls == [("protobuf",), ("text",), ("text",)]


def test_http_serves_text_from_an_exporter_without_formats():
    exp = FakeExporter({"text": b"t\n"}, formats=None)
    with serving(exp) as port:
        assert get(port, PROM_NATIVE_ACCEPT) == (CONTENT_TYPE, "Accept", b"t\n")
    assert exp.calls == [()]                             # called as scrape(), as before


# ---- a real Prometheus scrapes it -------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, query: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@contextmanager
def prometheus(tmp_path, target_port: int):
    port = _free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   "scrape_configs:\n  - job_name: bpfleet\n    static_configs:\n"
                   f"      - targets: ['127.0.0.1:{target_port}']\n")
    log = open(tmp_path / "prometheus.log", "wb")
    p = subprocess.Popen([PROMETHEUS, "--enable-feature=native-histograms", f"--config.file={cfg}",
                          f"--storage.tsdb.path={tmp_path / 'data'}",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield port
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        log.close()


def _poll(fn, seconds: float, what: str, log_path):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what}: nothing after {seconds}s (last: {last!r})\n"
                         + log_path.read_text(errors="replace")[-3000:])


def _observe(values, n):
    """Slot counts as bpfleet_log2_slot() makes them (test_histograms.py checks that rule)."""
    slots = [0] * n
    for v in values:
        slots[0 if v == 0 else min((v - 1).bit_length() + 1, n - 1)] += 1
    return slots


@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason="no prometheus binary")
def test_prometheus_scrapes_exact_native_histograms(tmp_path):
    # raw microseconds, 66 slots: exact. 0 | 1, 1 | 3, 4 | 2^40 + 1
    us = [0, 1, 1, 3, 4, 2**40 + 1]
    lat = prometheus_series(LabelSet.of([("disk", "vda")]), _observe(us, 66), sum(us), "log2", 1.0, with_native=True)
    # bytes exposed in KiB (scale 2^-10): 1 KiB, 1 KiB | 3000 B, 4 KiB
    sizes = [1024, 1024, 3000, 4096]
    size = prometheus_series(EMPTY, _observe(sizes, 66), sum(sizes), "log2", 2.0**-10, with_native=True)
    # built-in style: 27 slots, µs -> s: classic only, also through protobuf
    classic = prometheus_series(LabelSet.of([("op", "read")]), _observe([0, 1, 3, 3, 700], 27), 707, "log2", 1e-6,
                                with_native=False)
    families = [
        Family("test_latency_microseconds", "histogram", "Latency.", histograms=[lat]),
        Family("test_size_kibibytes", "histogram", "Sizes.", histograms=[size]),
        Family("test_classic_seconds", "histogram", "Classic.", histograms=[classic]),
        Family("test_events_total", "counter", "Events.",
               [("", LabelSet.of([("comm", 'a"b\\\nc')]), 42)]),
    ]
    exp = FakeExporter({"protobuf": proto.render(families), "text": render(families)})
    t0 = time.monotonic()
    with serving(exp) as target, prometheus(tmp_path, target) as port:
        log = tmp_path / "prometheus.log"
        _poll(lambda: _api(port, "test_events_total"), 25, "first scrape", log)
        assert exp.calls and all(c == ("protobuf",) for c in exp.calls), (exp.calls, exp.accepts)
        assert negotiate(exp.accepts[0]) == "protobuf"

        def value(q):
            [r] = _api(port, q)
            return float(r["value"][1])

        assert value("histogram_count(test_latency_microseconds)") == 6
        assert value("histogram_sum(test_latency_microseconds)") == 2**40 + 10
        assert value("histogram_quantile(0.5, test_latency_microseconds)") == 1.0   # rank 3 ends (0.5, 1]
        assert value("histogram_quantile(1, test_latency_microseconds)") == 2.0**41
        [r] = _api(port, "test_latency_microseconds")
        assert r["metric"] == {"__name__": "test_latency_microseconds", "disk": "vda",
                               "instance": f"127.0.0.1:{target}", "job": "bpfleet"}
        buckets = [(int(rule), float(lo), float(hi), float(c)) for rule, lo, hi, c in r["histogram"][1]["buckets"]]
        assert buckets == [
            (3, -NATIVE_ZERO_THRESHOLD, NATIVE_ZERO_THRESHOLD, 1.0),   # [-t, t]: the value 0
            (0, 0.5, 1.0, 2.0),                                        # (0.5, 1]: 1, 1
            (0, 2.0, 4.0, 2.0),                                        # (2, 4]: 3, 4
            (0, 2.0**40, 2.0**41, 1.0),                                # (2^40, 2^41]: 2^40 + 1
        ]

        assert value("histogram_count(test_size_kibibytes)") == 4
        assert value("histogram_sum(test_size_kibibytes)") == 9144 / 1024
        assert value("histogram_quantile(0.5, test_size_kibibytes)") == 1.0
        [r] = _api(port, "test_size_kibibytes")
        assert [(float(lo), float(hi), float(c)) for _, lo, hi, c in r["histogram"][1]["buckets"]] == [
            (0.5, 1.0, 2.0), (2.0, 4.0, 2.0)]

        got = {r["metric"]["le"]: float(r["value"][1]) for r in _api(port, "test_classic_seconds_bucket")}
        assert got == {le_label(b): float(c) for b, c in classic.buckets}      # same `le` as text
        assert value("test_classic_seconds_count") == 5
        assert value("test_classic_seconds_sum") == 707e-6
        assert _api(port, "histogram_count(test_classic_seconds)") == []         # not native

        [r] = _api(port, "test_events_total")
        assert r["metric"]["comm"] == 'a"b\\\nc' and float(r["value"][1]) == 42
    assert time.monotonic() - t0 < 30
