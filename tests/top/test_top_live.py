"""`bpfleet top --once` against a real exporter on this kernel while a getppid loop runs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import builtin_version

ROOT = Path(__file__).resolve().parents[2]
BPFLEET = [sys.executable, "-m", "bpfleet.cli"]

GETPPID_LOOP = "import os\nwhile True:\n    os.getppid()\n"


def top(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BPFLEET, "top", "--once", "--url", url, "--interval", "1", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_top_against_running_exporter(live_exporter):
    url = f"http://{live_exporter.listen}"
    work = subprocess.Popen([sys.executable, "-c", GETPPID_LOOP])
    try:
        r = top(url, "--json", "--top", "1000")
        t = top(url, "--filter", "^runq_latency_seconds$")
    finally:
        work.kill()
        work.wait(10)
    assert r.returncode == 0, r.stderr + live_exporter.stderr_tail()
    v = json.loads(r.stdout)

    progs = {p["name"]: p for p in v["programs"]}
    assert progs["syscalls"]["state"] == "attached" and progs["syscalls"]["version"] == builtin_version("syscalls")
    assert progs["runqlat"]["state"] == "attached"
    assert progs["syscalls"]["events_per_second"] > 0

    metrics = {m["name"]: m for m in v["metrics"]}
    sys_m = metrics["syscalls_total"]
    assert sys_m["type"] == "counter"
    getppid = [s for s in sys_m["series"] if s["labels"].get("syscall") == "getppid"]
    assert getppid, [s["labels"] for s in sys_m["series"]]
    assert getppid[0]["rate"] > 0 and getppid[0]["delta"] > 0

    runq = metrics["runq_latency_seconds"]
    assert runq["type"] == "histogram" and runq["unit"] == "seconds"
    h = runq["histograms"][0]
    assert h["count"] > 0 and h["rows"], h
    assert max(len(row["bar"]) for row in h["rows"]) == 40
    assert sum(row["count"] for row in h["rows"]) == h["count"]
    assert h["p50"] is not None and h["p99"] >= h["p50"]

    assert t.returncode == 0, t.stderr
    assert "runq_latency_seconds  histogram" in t.stdout
    assert "count     distribution" in t.stdout
    assert "|****************************************|" in t.stdout     # the fullest bucket
    assert "syscalls_total" not in t.stdout                              # --filter
    assert "syscalls" in t.stdout and "attached" in t.stdout            # the header
