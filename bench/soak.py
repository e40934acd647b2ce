"""Soak: a real exporter under a steady workload, scraped every second and pushing OTLP every
10 s, for 20 minutes (by default). Prints the exporter's RSS and open file descriptors over
time and their slopes (least squares, per minute), and counts failed scrapes and pushes.
Flat means: the slope's total over the run is within noise (a few hundred KiB of RSS, 0 fds).

Run as root from the repo root (it is not a test and asserts nothing; exit code 1 if a scrape
failed or the exporter died):

    .venv/bin/python bench/soak.py                       # 20 minutes
    .venv/bin/python bench/soak.py --minutes 2 --json    # quick look, machine-readable

What runs: every built-in program, built into a throw-away registry; the exporter with OTLP
metrics and events to a local OTLP receiver (gRPC, tests/otlp/otlp_receiver.py); a workload
process doing syscalls, execs, file I/O and loopback TCP connections; one scrape of /metrics
per --scrape-interval. The exporter's RSS (VmRSS) and fd count (/proc/<pid>/fd) are sampled
after every scrape. The first --warmup seconds are left out of the slope (caches filling).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "otlp"))

from bench._common import BUILTIN_PROGRAMS, machine  # noqa: E402

WORKLOAD = r"""
import os, socket, subprocess, time
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(64)
port = srv.getsockname()[1]
path = "/var/tmp/bpfleet-soak-io"
while True:
    for _ in range(2000):
        os.getppid()
    subprocess.run(["/bin/true"])
    with open(path, "wb") as f:
        f.write(os.urandom(65536)); f.flush(); os.fsync(f.fileno())
    c = socket.create_connection(("127.0.0.1", port)); a, _ = srv.accept(); c.close(); a.close()
    time.sleep(0.01)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slope_per_minute(ts: list[float], ys: list[float]) -> float:
    if len(ts) < 3:
        return 0.0
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var if var else 0.0


def sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB, open fds) of `pid`."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def metric(text: str, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--scrape-interval", type=float, default=1.0)
    ap.add_argument("--otlp-interval", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds left out of the slopes")
    ap.add_argument("--report-every", type=float, default=60.0, help="seconds between progress lines")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (loads BPF programs)")
    from otlp_receiver import Receiver
    from bench._common import build_into

    work = Path(tempfile.mkdtemp(prefix="bpfleet-soak-"))
    pin_root = tempfile.mkdtemp(prefix="bpfleet-soak-", dir="/sys/fs/bpf")
    receiver = Receiver("grpc").start()
    exporter = workload = None
    try:
        registry = work / "registry"
        names = sorted(d.name for d in BUILTIN_PROGRAMS.iterdir() if (d / "manifest.toml").is_file())
        for n in names:
            build_into(registry, BUILTIN_PROGRAMS / n)
        port = free_port()
        config = work / "exporter.toml"
        config.write_text(
            f'listen = "127.0.0.1:{port}"\npin_root = "{pin_root}"\nadmin_socket = "{work}/admin.sock"\n'
            f'[otlp]\nenabled = true\nendpoint = "{receiver.endpoint}"\nprotocol = "grpc"\n'
            f"interval_seconds = {args.otlp_interval}\nevents = true\n"
            + "".join(f"[programs.{n}]\n" for n in names))
        stderr = open(work / "exporter.stderr", "w")
        venv_bpfleet = ROOT / ".venv" / "bin" / "bpfleet"
        bpfleet = [str(venv_bpfleet)] if venv_bpfleet.exists() else [sys.executable, "-m", "bpfleet.cli"]
        exporter = subprocess.Popen([*bpfleet, "exporter", "--config", str(config),
                                     "--registry", str(registry)], stdout=subprocess.PIPE, stderr=stderr,
                                    cwd=ROOT, text=True,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        ready = json.loads(exporter.stdout.readline() or "{}")
        if ready.get("event") != "ready":
            raise SystemExit(f"exporter did not start: {(work / 'exporter.stderr').read_text()[-2000:]}")
        workload = subprocess.Popen([sys.executable, "-c", WORKLOAD])
        print(f"# soak: {machine()}; {args.minutes:g} min, scrape every {args.scrape_interval:g}s, "
              f"OTLP every {args.otlp_interval:g}s; exporter pid {exporter.pid}", flush=True)
        print(f"{'min':>6} {'rss KiB':>9} {'fds':>5} {'scrapes':>8} {'failed':>6} {'scrape ms':>9} "
              f"{'otlp ok':>7} {'otlp fail':>9}", flush=True)
        url = f"http://127.0.0.1:{port}/metrics"
        t0 = time.monotonic()
        end = t0 + args.minutes * 60
        ts, rss, fds, durations = [], [], [], []
        scrapes = failed = 0
        next_report = t0 + args.report_every
        text = ""
        while time.monotonic() < end:
            tick = time.monotonic()
            try:
                s0 = time.perf_counter()
                with urllib.request.urlopen(url, timeout=10) as r:
                    text = r.read().decode()
                durations.append(time.perf_counter() - s0)
                scrapes += 1
            except Exception as e:
                failed += 1
                print(f"scrape failed: {e}", file=sys.stderr, flush=True)
            if exporter.poll() is not None:
                print("the exporter exited", file=sys.stderr)
                failed += 1
                break
            r_kib, n_fd = sample(exporter.pid)
            ts.append(tick - t0)
            rss.append(r_kib)
            fds.append(n_fd)
            with receiver._lock:   # keep the receiver's own memory flat
                receiver.metrics.clear()
                receiver.logs.clear()
            if tick >= next_report:
                next_report += args.report_every
                print(f"{(tick - t0) / 60:6.1f} {r_kib:9d} {n_fd:5d} {scrapes:8d} {failed:6d} "
                      f"{statistics.median(durations[-60:]) * 1e3:9.1f} "
                      f"{metric(text, 'bpfleet_otlp_exports_total', signal='metrics', result='success'):7.0f} "
                      f"{metric(text, 'bpfleet_otlp_exports_total', signal='metrics') - metric(text, 'bpfleet_otlp_exports_total', signal='metrics', result='success'):9.0f}",
                      flush=True)
            time.sleep(max(0.0, args.scrape_interval - (time.monotonic() - tick)))
        steady = [i for i, t in enumerate(ts) if t >= min(args.warmup, ts[-1] / 2 if ts else 0)]
        st = [ts[i] for i in steady]
        summary = {
            "minutes": round((ts[-1] if ts else 0) / 60, 2),
            "scrapes": scrapes, "scrapes_failed": failed,
            "scrape_ms_median": round(statistics.median(durations) * 1e3, 2) if durations else None,
            "scrape_ms_max": round(max(durations) * 1e3, 2) if durations else None,
            "otlp_metrics_pushes_ok": metric(text, "bpfleet_otlp_exports_total", signal="metrics", result="success"),
            "otlp_metrics_pushes": metric(text, "bpfleet_otlp_exports_total", signal="metrics"),
            "rss_kib_start": rss[steady[0]] if steady else None, "rss_kib_end": rss[-1] if rss else None,
            "rss_kib_max": max(rss) if rss else None,
            "rss_kib_per_minute": round(slope_per_minute(st, [rss[i] for i in steady]), 2),
            # Growth that levels off (caches filling as new keys appear) shows as a smaller slope here.
            "rss_kib_per_minute_second_half": round(slope_per_minute(
                [t for t in ts if t >= ts[-1] / 2], [r for t, r in zip(ts, rss) if t >= ts[-1] / 2]), 2) if ts else None,
            "fds_start": fds[steady[0]] if steady else None, "fds_end": fds[-1] if fds else None,
            "fds_min": min(fds) if fds else None, "fds_max": max(fds) if fds else None,
            "fds_per_minute": round(slope_per_minute(st, [fds[i] for i in steady]), 4),
            "ringbuf_events": metric(text, "bpfleet_ringbuf_events_total"),
            "ringbuf_drops": metric(text, "bpfleet_ringbuf_drops_total"),
            "ringbuf_capped_polls": metric(text, "bpfleet_ringbuf_capped_polls_total"),
            "warmup_seconds": args.warmup,
        }
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print("\nsummary (slopes over the steady part, after the warm-up):")
            for k, v in summary.items():
                print(f"  {k:24s} {v}")
        return 0 if failed == 0 else 1
    finally:
        for p in (workload, exporter):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        receiver.stop()
        shutil.rmtree(pin_root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        try:
            os.unlink("/var/tmp/bpfleet-soak-io")
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
