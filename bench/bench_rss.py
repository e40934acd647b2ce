"""Memory and idle CPU of the real exporter serving every built-in program.

Run as root from the repo root:

    .venv/bin/python bench/bench_rss.py                    # 60 scrapes, then 60 s idle
    .venv/bin/python bench/bench_rss.py --idle-seconds 10 --top 25
    .venv/bin/python bench/bench_rss.py --importtime       # also: which imports cost what

Builds programs/* into a temp registry, starts `bpfleet exporter` (a subprocess, as systemd
would) with the built-in observability programs (what the default config runs) on a private
port, pin root and admin socket, then:

  start     VmRSS once it printed "ready" (everything attached, nothing scraped)
  scraped   VmRSS and PSS (/proc/PID/smaps_rollup) after --scrapes scrapes of /metrics, 0.1 s apart
  idle      CPU the process used while nobody scraped for --idle-seconds (utime + stime from
            /proc/PID/stat), as % of one core; then VmRSS again
  breakdown RSS per mapping (/proc/PID/smaps): shared libraries by file, the rest by kind, the
            --top largest, and whether libbcc / libLLVM / libclang are mapped at all

The goal (issue 12): ≤ 45 MB after 60 scrapes, idle CPU ≤ 0.3 % of a core. The exporter is
stopped with SIGTERM at the end (it unpins and detaches everything).
"""
from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BPFFS, ROOT, free_port, machine, status_kb  # noqa: E402

BPFLEET = ROOT / ".venv" / "bin" / "bpfleet"
HEAVY = ("libbcc", "libLLVM", "libclang")
GOAL_MB = 45.0
EXTRA_ENV: dict[str, str] = {}
GOAL_IDLE_PERCENT = 0.3


def rollup_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime, stime (fields 14 and 15 of stat)


def thread_ticks(pid: int) -> dict[str, int]:
    """thread id -> utime + stime ticks (Python 3.11 does not name its threads for the OS)."""
    ticks: dict[str, int] = defaultdict(int)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        ticks[tid] += int(fields[11]) + int(fields[12])
    return ticks


def smaps_breakdown(pid: int) -> dict[str, tuple[int, int]]:
    """mapping name -> (Rss kB, Pss kB), summed over its mappings; anonymous ones by kind."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else "[anon: heap, arenas, thread stacks]"
            elif head[0] == "Rss:":
                totals[name][0] += int(head[1])
            elif head[0] == "Pss:":
                totals[name][1] += int(head[1])
    return {k: (v[0], v[1]) for k, v in totals.items()}


def start_exporter(workdir: Path, registry: Path, programs: list[str]) -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    pin_root = tempfile.mkdtemp(prefix="bpfleet-bench-rss-", dir=BPFFS)
    os.rmdir(pin_root)   # the exporter makes it
    config = workdir / "exporter.toml"
    config.write_text(f'listen = "127.0.0.1:{port}"\npin_root = "{pin_root}"\n'
                      f'admin_socket = "{workdir}/admin.sock"\n'
                      + "".join(f"[programs.{n}]\n" for n in programs))
    proc = subprocess.Popen([str(BPFLEET), "exporter", "--config", str(config), "--registry", str(registry)],
                            stdout=subprocess.PIPE, stderr=open(workdir / "stderr", "w"), cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", BPFLEET_LOG="WARNING", **EXTRA_ENV))
    end, buf = time.monotonic() + 60, b""
    while time.monotonic() < end and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            buf += os.read(proc.stdout.fileno(), 65536)
            if b'"ready"' in buf:
                return proc, f"http://127.0.0.1:{port}", pin_root
    proc.kill()
    raise SystemExit(f"exporter did not get ready:\n{(workdir / 'stderr').read_text()[-3000:]}")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read()


def import_costs(top: int) -> list[tuple[int, str]]:
    """`python -X importtime` of what `bpfleet exporter` imports before it serves: (µs, module)
    of the top-level imports and the ones they make directly, cumulative."""
    code = "import bpfleet.cli; bpfleet.cli.parser(only_exporter=True); import exporter.daemon.process"
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-X", "importtime", "-c", code],
                       capture_output=True, text=True, cwd=ROOT)
    rows = []
    for line in r.stderr.splitlines():
        parts = line.split("|")
        name = parts[2] if len(parts) == 3 else ""
        if parts[1:2] and parts[1].strip().isdigit() and len(name) - len(name.lstrip()) <= 3:
            rows.append((int(parts[1]), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scrapes", type=int, default=60)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--top", type=int, default=15, help="largest mappings to list")
    ap.add_argument("--importtime", action="store_true", help="list the costliest imports too")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the exporter loads BPF programs")
    sys.path.insert(0, str(ROOT))
    from exporter.config import builtin_program_names
    programs = builtin_program_names()
    print(f"# {machine()}")
    with tempfile.TemporaryDirectory(prefix="bpfleet-bench-rss-") as tmp:
        workdir, registry = Path(tmp), Path(tmp) / "registry"
        subprocess.run([str(BPFLEET), "programs", "build", "--registry", str(registry)],
                       check=True, capture_output=True, cwd=ROOT)
        proc, base, pin_root = start_exporter(workdir, registry, programs)
        try:
            return measure(proc.pid, base, args)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            if os.path.exists(pin_root):
                print(f"# pin root {pin_root} was left behind: removed")
                shutil.rmtree(pin_root, ignore_errors=True)


def measure(pid: int, base: str, args) -> int:
    rss_start = status_kb(pid, "VmRSS")
    sizes = []
    for _ in range(args.scrapes):
        sizes.append(len(get(base + "/metrics")))
        time.sleep(0.1)
    rss, pss, hwm = status_kb(pid, "VmRSS"), rollup_kb(pid, "Pss"), status_kb(pid, "VmHWM")
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0, threads0 = time.monotonic(), cpu_ticks(pid), thread_ticks(pid)
    time.sleep(args.idle_seconds)
    elapsed = time.monotonic() - t0
    idle = 100.0 * (cpu_ticks(pid) - c0) / hz / elapsed
    per_thread = {n: 100.0 * (t - threads0.get(n, 0)) / hz / elapsed
                  for n, t in thread_ticks(pid).items()}
    rss_idle = status_kb(pid, "VmRSS")
    print(f"{'start (attached, unscraped)':32} VmRSS {rss_start / 1024:6.1f} MB")
    print(f"{f'after {args.scrapes} scrapes':32} VmRSS {rss / 1024:6.1f} MB   PSS {pss / 1024:6.1f} MB   "
          f"peak (VmHWM) {hwm / 1024:6.1f} MB   body {sizes[-1]} bytes")
    print(f"{f'after {args.idle_seconds:.0f} s idle':32} VmRSS {rss_idle / 1024:6.1f} MB   "
          f"idle CPU {idle:.3f} % of a core")
    print("idle CPU by thread id: " + ", ".join(f"{n} {p:.3f} %" for n, p in
                                             sorted(per_thread.items(), key=lambda kv: -kv[1])))
    maps = smaps_breakdown(pid)
    heavy = sorted(n for n in maps if any(h in n for h in HEAVY))
    print(f"libbcc/libLLVM/libclang mapped: {', '.join(heavy) if heavy else 'none'}")
    print(f"\nRSS by mapping (top {args.top}), kB:")
    print(f"{'Rss':>8} {'Pss':>8}  mapping")
    for name, (r, p) in sorted(maps.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f"{r:8d} {p:8d}  {name}")
    if args.importtime:
        print("\ncostliest top-level imports of `bpfleet exporter` (cumulative µs):")
        for us, module in import_costs(args.top):
            print(f"{us:9d}  {module}")
    met = rss / 1024 <= GOAL_MB and idle <= GOAL_IDLE_PERCENT
    print(f"\ngoal ≤ {GOAL_MB:.0f} MB and ≤ {GOAL_IDLE_PERCENT} % idle CPU: {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
