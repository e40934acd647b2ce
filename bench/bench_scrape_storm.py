"""Memory and latency of the exporter under concurrent scrapes of a 100k-series map.

Run as root from the repo root:

    .venv/bin/python bench/bench_scrape_storm.py                    # 16 scrapers x 8 requests, 100k series
    .venv/bin/python bench/bench_scrape_storm.py --root /other/checkout   # the exporter of another checkout

Starts a real `bpfleet exporter` (from --root, default this checkout) as its own process with
bench/programs/benchmap, fills the map with N series from here through its pin, and measures
the exporter process:

  idle     RSS after the map is filled, before any scrape
  single   peak RSS (VmHWM, reset through /proc/PID/clear_refs) over one scrape, after a first
           scrape has decoded every key (the label caches are warm, as in steady state)
  storm    peak RSS while `--scrapers` clients each send `--requests` scrapes back to back
           (all at once), with every request's latency and whether it failed (a non-200, a
           short body or an error)

Goal (issue 12): storm peak <= 1.5x single, with no failures and latency no worse than before.
"""
from __future__ import annotations

import argparse
import ctypes as C
import glob
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (BENCH_PROGRAMS, ROOT, Workspace, build_into, free_port, machine,  # noqa: E402
                           status_kb)
from bench.bench_scrape import MAP, fill  # noqa: E402

_libbpf = C.CDLL("libbpf.so.1", use_errno=True)
_libbpf.bpf_obj_get.argtypes = [C.c_char_p]


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")    # resets VmHWM to the current RSS


def scrape(port: int) -> int:
    """One GET /metrics read to the end -> body length; raises on anything but a full 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
        if r.status != 200 or len(body) != int(r.headers["Content-Length"]):
            raise RuntimeError(f"status {r.status}, {len(body)} bytes")
        return len(body)
    finally:
        conn.close()


def start_exporter(root: Path, ws, port: int, tmp: str) -> subprocess.Popen:
    cfg = Path(tmp) / "exporter.toml"
    cfg.write_text(f'listen = "127.0.0.1:{port}"\nregistry = "{ws.registry}"\npin_root = "{ws.pin_root}"\n'
                   f'admin_socket = "{tmp}/admin.sock"\n\n'
                   '[programs.benchmap]\nknobs = { count_execs = false }\n')
    env = dict(os.environ, PYTHONPATH=str(root), BPFLEET_LOG="WARNING")
    proc = subprocess.Popen([sys.executable, "-m", "bpfleet.cli", "exporter", "--config", str(cfg)],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "log", "w"))
    deadline = time.monotonic() + 60
    while not glob.glob(f"{ws.pin_root}/benchmap/*/map_{MAP}"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"exporter did not start:\n{(Path(tmp) / 'log').read_text()[-3000:]}")
        time.sleep(0.1)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"exporter did not listen:\n{(Path(tmp) / 'log').read_text()[-3000:]}")
            time.sleep(0.1)


def storm(port: int, scrapers: int, requests: int) -> tuple[list[float], int]:
    """Every scraper sends its requests back to back, all scrapers at once -> (latencies, failed)."""
    latencies, failed, lock = [], [0], threading.Lock()
    start = threading.Barrier(scrapers)

    def client():
        start.wait()
        for _ in range(requests):
            t0 = time.perf_counter()
            try:
                scrape(port)
            except Exception:
                with lock:
                    failed[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failed[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--scrapers", type=int, default=16)
    ap.add_argument("--requests", type=int, default=8, help="requests per scraper")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose exporter runs (default: this one)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (loads a BPF program)")
    print(f"# bench_scrape_storm: {machine()}; exporter from {args.root}")
    with Workspace() as ws, tempfile.TemporaryDirectory(prefix="bpfleet-storm-") as tmp:
        build_into(ws.registry, BENCH_PROGRAMS / "benchmap")
        port = free_port()
        proc = start_exporter(args.root.resolve(), ws, port, tmp)
        try:
            (pin,) = glob.glob(f"{ws.pin_root}/benchmap/*/map_{MAP}")
            fd = _libbpf.bpf_obj_get(pin.encode())
            if fd < 0:
                raise SystemExit(f"bpf_obj_get {pin}: errno {C.get_errno()}")
            fill(fd, args.series)
            os.close(fd)
            idle = status_kb(proc.pid, "VmRSS")
            size = scrape(port)                      # the first scrape decodes every key
            reset_peak(proc.pid)
            t0 = time.perf_counter()
            scrape(port)
            single_s = time.perf_counter() - t0
            single = status_kb(proc.pid, "VmHWM")
            reset_peak(proc.pid)
            before = status_kb(proc.pid, "VmRSS")
            t0 = time.perf_counter()
            latencies, failed = storm(port, args.scrapers, args.requests)
            wall = time.perf_counter() - t0
            peak = status_kb(proc.pid, "VmHWM")
            after = status_kb(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    mb = 1024
    print(f"series {args.series}, body {size / 1e6:.1f} MB; {args.scrapers} scrapers x {args.requests} requests")
    print(f"single scrape: {single_s * 1e3:.0f} ms")
    print(f"storm: {len(latencies)} ok, {failed} failed in {wall:.1f} s; latency median "
          f"{statistics.median(latencies):.2f} s, p90 {statistics.quantiles(latencies, n=10)[-1]:.2f} s, "
          f"max {max(latencies):.2f} s")
    print(f"RSS MB: idle {idle / mb:.0f}, single-scrape peak {single / mb:.0f}, before storm "
          f"{before / mb:.0f}, storm peak {peak / mb:.0f}, after storm {after / mb:.0f}")
    ratio = peak / single
    print(f"goal: storm peak <= 1.5x single-scrape peak: {ratio:.2f}x -> {'met' if ratio <= 1.5 else 'MISSED'}")


if __name__ == "__main__":
    main()
