"""Scrape cost of one BPF hash map of N series: batch read + decode + render.

Run as root from the repo root:

    .venv/bin/python bench/bench_scrape.py                      # 1k, 10k, 100k series
    .venv/bin/python bench/bench_scrape.py --sizes 100000 --runs 15
    .venv/bin/python bench/bench_scrape.py --sizes 100000 --profile warm   # cProfile one path
    .venv/bin/python bench/bench_scrape.py --sizes 100000 --max-series 10000  # the series limit folding

Builds bench/programs/benchmap (a BPF_MAP_TYPE_HASH keyed by {char comm[16]; u32 pid},
value u64, one counter metric labelled comm and pid) into a temp registry, loads it with
exporter.load.loader.load, fills the map from user space with bpf_map_update_batch, and
times what the exporter does on every scrape: LoadedProgram.collect() then
exposition.render(). Paths:

  cold   the label cache is emptied before every run: the first scrape after a load, or
         after the cache limit was hit, when every key is decoded
  warm   the label cache already holds every key: every later scrape while keys stay
  naive  for comparison, what a straightforward Python exporter does: bpf_map_get_next_key +
         bpf_map_lookup_elem per key through ctypes, label decoding per scrape, and
         prometheus_client's generate_latest over a custom collector

Breakdown: read = the map syscalls into Python, decode = bytes to Family (labels, values),
render = text exposition. Each phase column is that phase's median over the runs.
Timing uses time.perf_counter with the garbage collector on, as in the exporter.
"""
from __future__ import annotations

import argparse
import cProfile
import ctypes as C
import os
import pstats
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH_PROGRAMS, Workspace, best_median, build_into, machine  # noqa: E402
from exporter import libbpf  # noqa: E402
from exporter.exposition.text import render  # noqa: E402
from exporter.libbpf import ffi  # noqa: E402
from exporter.load import loader  # noqa: E402

MAP = "bench_counts"
KEY = struct.Struct("<16sI")
GOAL_MS = 150.0
GOAL_SERIES = 100_000


def fill(fd: int, n: int) -> None:
    """n distinct keys: 1000 command names times distinct pids, like a busy host's
    (comm, pid) map; values are arbitrary counts."""
    keys = b"".join(KEY.pack(f"worker-{i % 1000}".encode(), 1000 + i) for i in range(n))
    values = b"".join(struct.pack("<Q", i * 7919 + 1) for i in range(n))
    libbpf.update_batch(fd, keys, values, n)


# ---- the exporter's path ----

def scrape(prog) -> tuple[float, float, float, bytes]:
    """One scrape as Exporter.scrape does it -> (read s, decode s, render s, body)."""
    t0 = time.perf_counter()
    families, stats = prog.collect()
    t1 = time.perf_counter()
    body = render(families)
    t2 = time.perf_counter()
    read = sum(s.read_seconds for s in stats)
    return read, (t1 - t0) - read, t2 - t1, body


def clear_label_cache(prog) -> None:
    for collector, _map in prog.collectors:
        collector.forget_labels()


# ---- the naive path ----

class NaiveCollector:
    """A prometheus_client custom collector reading the map key by key, as bcc-style
    exporters do. Records its own read and decode times."""

    def __init__(self, fd: int, key_size: int, value_size: int):
        self.fd, self.key_size, self.value_size = fd, key_size, value_size
        self.read_s = self.decode_s = 0.0

    def collect(self):
        from prometheus_client.core import CounterMetricFamily
        t0 = time.perf_counter()
        items = []
        key, value = C.create_string_buffer(self.key_size), C.create_string_buffer(self.value_size)
        prev = None
        while ffi.get_next_key(self.fd, prev, key) == 0:
            if ffi.lookup_elem(self.fd, key, value) == 0:
                items.append((key.raw, value.raw))
            prev = key
        t1 = time.perf_counter()
        fam = CounterMetricFamily("bench_events", "Benchmark series: one per (comm, pid) key",
                                  labels=["comm", "pid"])
        for k, v in items:
            comm, pid = KEY.unpack(k)
            fam.add_metric([comm.split(b"\0", 1)[0].decode("utf-8", "replace"), str(pid)],
                           int.from_bytes(v, "little"))
        t2 = time.perf_counter()
        self.read_s, self.decode_s = t1 - t0, t2 - t1
        yield fam


def naive_scrape(registry, collector) -> tuple[float, float, float, bytes]:
    from prometheus_client import generate_latest
    t0 = time.perf_counter()
    body = generate_latest(registry)
    total = time.perf_counter() - t0
    return collector.read_s, collector.decode_s, total - collector.read_s - collector.decode_s, body


# ---- driver ----

def measure(fn, runs: int, before=None) -> dict:
    rows = []
    for _ in range(runs):
        if before:
            before()
        rows.append(fn())
    totals = [r + d + w for r, d, w, _ in rows]
    best, median = best_median(totals)
    med = lambda i: best_median([row[i] for row in rows])[1]  # noqa: E731
    body = rows[-1][3]
    return {"best": best, "median": median, "read": med(0), "decode": med(1), "render": med(2),
            "bytes": len(body), "series": sum(1 for ln in body.split(b"\n") if ln and not ln.startswith(b"#"))}


def profile(fn, runs: int, before=None, top: int = 18) -> None:
    pr = cProfile.Profile()
    for _ in range(runs):
        if before:
            before()
        pr.enable()
        fn()
        pr.disable()
    st = pstats.Stats(pr)
    st.sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated series counts")
    ap.add_argument("--runs", type=int, default=9, help="runs per size and path (cold/warm)")
    ap.add_argument("--naive-runs", type=int, default=3, help="runs of the naive path (0 skips it)")
    ap.add_argument("--max-series", type=int, default=None,
                    help="series limit of the metric (default: the bench manifest's 200000, i.e. no "
                         "folding); lower it to time the overflow folding (core/limits.py)")
    ap.add_argument("--profile", choices=["cold", "warm", "naive"],
                    help="instead of the table, cProfile that path at the largest size")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (loads a BPF program)")
    sizes = [int(s) for s in args.sizes.split(",")]

    print(f"# bench_scrape: {machine()}")
    rows = []
    with Workspace() as ws:
        artifact = build_into(ws.registry, BENCH_PROGRAMS / "benchmap")
        for n in sizes if not args.profile else sizes[-1:]:
            prog, _ = loader.load(loader.read(artifact), {"count_execs": False}, ws.pin_root, "bench_scrape")
            if args.max_series:
                for collector, _map in prog.collectors:
                    collector.set_max_series(args.max_series)
            try:
                info = prog.obj.maps()[MAP]
                fd = prog.obj.map_fd(MAP)
                fill(fd, n)
                if args.profile == "cold":
                    profile(lambda: scrape(prog), args.runs, lambda: clear_label_cache(prog))
                    continue
                if args.profile == "warm":
                    scrape(prog)
                    profile(lambda: scrape(prog), args.runs)
                    continue
                naive = NaiveCollector(fd, info.key_size, info.value_size)
                from prometheus_client import CollectorRegistry
                registry = CollectorRegistry(auto_describe=False)
                registry.register(naive)
                if args.profile == "naive":
                    profile(lambda: naive_scrape(registry, naive), max(args.naive_runs, 1))
                    continue
                first = measure(lambda: scrape(prog), 1)  # the true first scrape after load
                cold = measure(lambda: scrape(prog), args.runs, lambda: clear_label_cache(prog))
                scrape(prog)
                warm = measure(lambda: scrape(prog), args.runs)
                rows += [(n, "first", 1, first), (n, "cold", args.runs, cold),
                         (n, "warm", args.runs, warm)]
                if args.naive_runs:
                    rows.append((n, "naive", args.naive_runs,
                                 measure(lambda: naive_scrape(registry, naive), args.naive_runs)))
            finally:
                prog.close()
    if args.profile:
        return

    hdr = (f"{'series':>7} {'path':<6} {'runs':>4} {'best ms':>9} {'median ms':>9} {'µs/series':>9}"
           f" | {'read ms':>8} {'decode ms':>9} {'render ms':>9} {'body MB':>7}")
    print(hdr)
    print("-" * len(hdr))
    for n, path, runs, m in rows:
        if m["series"] != (min(n, args.max_series) if args.max_series and path != "naive" else n):
            print(f"warning: {path} rendered {m['series']} series, expected {n}", file=sys.stderr)
        print(f"{n:>7} {path:<6} {runs:>4} {m['best'] * 1e3:>9.1f} {m['median'] * 1e3:>9.1f}"
              f" {m['median'] / n * 1e6:>9.2f} | {m['read'] * 1e3:>8.1f} {m['decode'] * 1e3:>9.1f}"
              f" {m['render'] * 1e3:>9.1f} {m['bytes'] / 1e6:>7.2f}")
    by = {(n, p): m for n, p, _r, m in rows}
    if (GOAL_SERIES, "warm") in by:
        for path in ("warm", "cold"):
            med = by[(GOAL_SERIES, path)]["median"] * 1e3
            print(f"goal: {GOAL_SERIES} series in <= {GOAL_MS:.0f} ms: {path} median {med:.1f} ms "
                  f"-> {'met' if med <= GOAL_MS else 'MISSED'}")
        if (GOAL_SERIES, "naive") in by:
            print(f"naive / warm (median): {by[(GOAL_SERIES, 'naive')]['median'] / by[(GOAL_SERIES, 'warm')]['median']:.1f}x")


if __name__ == "__main__":
    main()
