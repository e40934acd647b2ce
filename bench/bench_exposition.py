"""Render 100k series with exporter.exposition (text and protobuf) and report the time.

Run from the repo root: .venv/bin/python bench/bench_exposition.py [series]
The label sets are made once up front, as the exporter caches them per key; the warm-up render
makes each one's text and protobuf encoding, as the first scrape does."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.series import Family, LabelSet  # noqa: E402
from exporter.exposition import proto  # noqa: E402
from exporter.exposition.text import le_label, render  # noqa: E402


def build_families(series: int) -> list[Family]:
    """A realistic mix: half counter series (ints), a quarter gauges (floats),
    a quarter histogram samples (buckets, sum, count)."""
    counters = [
        ("", LabelSet.of([("comm", f"proc{i % 500}"), ("syscall", f"sys{i % 300}"), ("cgroup", f"/svc{i % 40}")]), i * 7)
        for i in range(series // 2)
    ]
    gauges = [("", LabelSet.of([("cpu", str(i % 64)), ("task", f"t{i}")]), i / 3) for i in range(series // 4)]
    bounds = [2.0**slot for slot in range(20)] + [float("inf")]
    histogram = []
    disks = 0
    while len(histogram) < series - len(counters) - len(gauges):
        base = [("disk", f"vd{disks}")]
        histogram += [("_bucket", LabelSet.of(base + [("le", le_label(b))]), n) for n, b in enumerate(bounds)]
        histogram += [("_sum", LabelSet.of(base), 1234.5), ("_count", LabelSet.of(base), len(bounds))]
        disks += 1
    return [
        Family("bpfleet_syscalls_total", "counter", "Syscalls by process.", counters),
        Family("bpfleet_runqueue_latency_ratio", "gauge", "Run queue latency ratio.", gauges),
        Family("bpfleet_io_size_bytes", "histogram", "I/O size.", histogram),
    ]


def time_it(fn, families, runs: int = 10) -> tuple[float, float, bytes]:
    fn(families)  # warm-up
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        body = fn(families)
        timings.append(time.perf_counter() - start)
    return min(timings), sorted(timings)[len(timings) // 2], body


def main() -> None:
    series = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    families = build_families(series)
    total = sum(len(family.samples) for family in families)
    for name, fn in (("text", render), ("protobuf", proto.render)):
        best, median, body = time_it(fn, families)
        print(f"{name}: {total} series, {len(body) / 1e6:.1f} MB")
        print(f"  best   {best * 1e3:7.1f} ms  {best / total * 1e6:.3f} µs/series")
        print(f"  median {median * 1e3:7.1f} ms  {median / total * 1e6:.3f} µs/series")


if __name__ == "__main__":
    main()
