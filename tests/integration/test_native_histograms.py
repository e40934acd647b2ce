"""A real Prometheus with native histograms on, scraping a real exporter, stores the built-in
latency histograms as native histograms (protobuf exposition) with the exporter's exact counts."""
from __future__ import annotations

import time

from harness import deadline_poll
from prometheus_server import Prometheus

Q = 'runq_latency_seconds{job="bpfleet"}'


def test_prometheus_stores_builtin_histograms_as_native(tmp_path, exporters):
    e = exporters({"runqlat": {}, "biolatency": {}})
    with Prometheus(tmp_path / "prom", [e.listen], native_histograms=True) as prom:
        deadline_poll(lambda: prom.query(f"histogram_count({Q})")["result"], 30, interval=0.2,
                      what="a native runq_latency_seconds sample in Prometheus")
        for _ in range(20):  # context switches keep coming: short sleeps make sure of that
            time.sleep(0.005)
        # A native histogram has no _bucket series: the classic form was not what got stored.
        assert prom.query('count(runq_latency_seconds_bucket{job="bpfleet"})')["result"] == []
        native_count = prom.value(f"histogram_count({Q})")
        after = e.metrics().value("runq_latency_seconds_count")
        assert 0 < native_count <= after
        # Sum and quantile come from the native buckets: finite, positive and ordered.
        p50 = prom.value(f"histogram_quantile(0.5, {Q})")
        p99 = prom.value(f"histogram_quantile(0.99, {Q})")
        assert 0 < p50 <= p99
        assert prom.value(f"histogram_sum({Q})") > 0
        # Every bucket boundary Prometheus reports is a power of two in seconds: exact, not interpolated.
        (series,) = prom.query(Q)["result"]
        for _boundary_rule, lower, upper, _count in series["histogram"][1]["buckets"]:
            for bound in (float(lower), float(upper)):
                assert bound == 0 or bound.hex().startswith(("0x1.0000000000000p", "-0x1.0000000000000p")), bound
