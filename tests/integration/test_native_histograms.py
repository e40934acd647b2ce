"""A real Prometheus with native histograms on scrapes a real exporter through a recording proxy.
Every native histogram sample Prometheus stored must equal, bucket for bucket, the classic `le`
buckets of the very protobuf message it was ingested from: same count, same sum, one native
bucket per non-empty classic bucket with the same bounds and count (docs/histograms.md: the
built-ins' slots are exact both ways). The classic side is decoded here with the protobuf
runtime; the native side is what Prometheus made of the message."""
from __future__ import annotations

import math
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.decoder import _DecodeVarint32

from harness import deadline_poll
from prometheus_server import Prometheus

BUILTINS = {"runq_latency_seconds", "bio_latency_seconds"}
MIN_SAMPLES = 3                      # stored samples of runq_latency_seconds to compare
ZERO_THRESHOLD = 2.0 ** -128         # docs/histograms.md: the zero bucket holds exactly slot 0
PROTOBUF = "application/vnd.google.protobuf"

# The classic fields of client_model's metrics.proto (field numbers from metrics.proto). The
# native fields are left out on purpose: the protobuf runtime keeps them as unknown fields.
_F = descriptor_pb2.FieldDescriptorProto
_PROTO = {
    "LabelPair": [("name", 1, _F.TYPE_STRING, None), ("value", 2, _F.TYPE_STRING, None)],
    "Bucket": [("cumulative_count", 1, _F.TYPE_UINT64, None), ("upper_bound", 2, _F.TYPE_DOUBLE, None)],
    "Histogram": [("sample_count", 1, _F.TYPE_UINT64, None), ("sample_sum", 2, _F.TYPE_DOUBLE, None),
                  ("bucket", 3, _F.TYPE_MESSAGE, "Bucket")],
    "Metric": [("label", 1, _F.TYPE_MESSAGE, "LabelPair"), ("histogram", 7, _F.TYPE_MESSAGE, "Histogram")],
    "MetricFamily": [("name", 1, _F.TYPE_STRING, None), ("metric", 4, _F.TYPE_MESSAGE, "Metric")],
}


def _metric_family_class():
    fd = descriptor_pb2.FileDescriptorProto(name="classic_subset.proto", package="pc", syntax="proto2")
    for msg, fields in _PROTO.items():
        m = fd.message_type.add(name=msg)
        for name, number, type_, type_name in fields:
            label = _F.LABEL_REPEATED if name in ("label", "bucket", "metric") else _F.LABEL_OPTIONAL
            f = m.field.add(name=name, number=number, label=label, type=type_)
            if type_name:
                f.type_name = f".pc.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("pc.MetricFamily"))


MetricFamily = _metric_family_class()


def classic_histograms(body: bytes) -> dict:
    """(name, sorted exporter labels) -> Histogram, from delimited MetricFamily messages."""
    out, pos = {}, 0
    while pos < len(body):
        n, pos = _DecodeVarint32(body, pos)
        mf = MetricFamily.FromString(body[pos:pos + n])
        pos += n
        for m in mf.metric:
            if m.HasField("histogram"):
                out[(mf.name, tuple(sorted((lp.name, lp.value) for lp in m.label)))] = m.histogram
    return out


def classic_per_bucket(h) -> dict[float, int]:
    """Non-empty classic buckets, de-cumulated: upper bound -> count (+Inf is the count's rest)."""
    out, prev = {}, 0
    for bound, cumulative in [(b.upper_bound, b.cumulative_count) for b in h.bucket] + [(math.inf, h.sample_count)]:
        if cumulative != prev:
            out[bound] = cumulative - prev
        prev = cumulative
    return out


def native_per_bucket(stored: dict, bounds: list[float]) -> dict[float, float]:
    """Prometheus's native buckets as classic ones: schema 0 buckets (hi/2, hi] whose upper bound
    is a classic bound, so each holds the integers of exactly one slot."""
    out = {}
    for rule, lo, hi, count in stored["buckets"]:
        lo, hi = float(lo), float(hi)
        if lo < 0:                                   # the zero bucket [-t, t]: slot 0, le="0"
            assert (int(rule), lo, hi) == (3, -ZERO_THRESHOLD, ZERO_THRESHOLD), stored
            out[0.0] = float(count)
        else:                                        # (lo, hi], left-open
            assert int(rule) == 0 and lo == hi / 2 and hi in bounds, (rule, lo, hi, bounds)
            out[hi] = float(count)
    return out


class RecordingProxy:
    """Forwards each /metrics GET to the exporter with the scraper's Accept header and keeps
    every body it passed on (kept before it answers, so Prometheus cannot store one unseen)."""

    def __init__(self, upstream: str):
        self.bodies: list[bytes] = []
        self.content_types: set[str] = set()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                req = urllib.request.Request(f"http://{upstream}{self.path}",
                                             headers={"Accept": self.headers.get("Accept", "")})
                with urllib.request.urlopen(req, timeout=10) as r:
                    body, ctype = r.read(), r.headers["Content-Type"]
                with proxy.lock:
                    proxy.bodies.append(body)
                    proxy.content_types.add(ctype)
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.listen = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def stored_native(prom: Prometheus) -> list[dict]:
    """Every raw native histogram sample of the built-ins Prometheus holds, with its series."""
    res = prom.query('{job="bpfleet", __name__=~"runq_latency_seconds|bio_latency_seconds"}[1h]')["result"]
    return [r for r in res if r.get("histograms")]


def test_stored_native_histograms_equal_the_classic_buckets_of_their_scrape(tmp_path, exporters):
    e = exporters({"runqlat": {}, "biolatency": {}})
    with RecordingProxy(e.listen) as proxy, \
            Prometheus(tmp_path / "prom", [proxy.listen], native_histograms=True) as prom:
        deadline_poll(lambda: any(r["metric"]["__name__"] == "runq_latency_seconds"
                                  and len(r["histograms"]) >= MIN_SAMPLES for r in stored_native(prom)),
                      60, interval=0.5, what=f"{MIN_SAMPLES} native runq_latency_seconds samples")
        series = stored_native(prom)
        # A native histogram has no _bucket series: the classic form was not what got stored.
        assert prom.query('count({job="bpfleet", __name__=~"(runq|bio)_latency_seconds_bucket"})')["result"] == []
    with proxy.lock:
        scrapes = [classic_histograms(b) for b in proxy.bodies]
        assert proxy.content_types and all(t.startswith(PROTOBUF) for t in proxy.content_types), \
            proxy.content_types
    compared = 0
    for s in series:
        name = s["metric"]["__name__"]
        labels = tuple(sorted((k, v) for k, v in s["metric"].items() if k not in ("__name__", "job", "instance")))
        for _ts, stored in s["histograms"]:
            count = float(stored["count"])
            # Counters only grow: the scrapes whose classic count is this one all hold the same
            # histogram, and one of them is the message Prometheus stored this sample from.
            same = [sc[(name, labels)] for sc in scrapes
                    if (name, labels) in sc and sc[(name, labels)].sample_count == count]
            assert same, (f"{name}{labels}: Prometheus stored count {count}, no scrape had it; scraped "
                          f"counts: {[sc[(name, labels)].sample_count for sc in scrapes if (name, labels) in sc]}")
            h = same[0]
            assert all(x == h for x in same), f"{name}: scrapes with one count differ"
            assert float(stored["sum"]) == h.sample_sum, (name, stored["sum"], h.sample_sum)
            bounds = [b.upper_bound for b in h.bucket] + [math.inf]
            assert native_per_bucket(stored, bounds) == classic_per_bucket(h), f"{name}{labels} at count {count}"
            compared += name == "runq_latency_seconds"
    assert {s["metric"]["__name__"] for s in series} <= BUILTINS
