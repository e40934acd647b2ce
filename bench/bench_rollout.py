"""Rollout wall time against lab hosts, and the orchestrator's own overhead beyond Ansible's.

Run as root from the repo root (it starts a lab of its own and takes it down at the end):

    .venv/bin/python bench/bench_rollout.py                          # 5, 20, 50 hosts x forks 5, 10, 25
    .venv/bin/python bench/bench_rollout.py --sizes 5,20 --forks 10 --bake 1 --json out.json

For each fleet size the lab grows to that many netns hosts (`bpfleet lab up N`, prefix
bpflbnch, 10.213.240.0/24, state in /var/lib/bpfleet-lab-bench), `bpfleet fleet install`
puts the exporter on the new hosts with syscalls@1.0.0, and for each fork count one rollout of
the next syscalls version (same code, a new version number: a real upgrade with map handover)
runs through the CLI: `bpfleet rollout syscalls@1.K.0 --bake B --forks F --json`, default steps
(canary, 1, 10%, 50%, 100%).

From the rollout's result line: wall = the engine's time from start to result (the CLI's own
start-up and the artifact lookup excluded), ansible = the sum of the wall times of its
run_playbook calls (ansible-runner and ansible-playbook included), bake = waves x B seconds of
sleep. Overhead = wall - ansible - bake: the time the orchestrator spends on its own (journal
writes, planning, judging, packing archives, progress output). Goal: overhead <= 10% of wall.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BUILTIN_PROGRAMS, ROOT, machine  # noqa: E402

LAB = {"BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-bench", "BPFLEET_LAB_PREFIX": "bpflbnch",
       "BPFLEET_LAB_SUBNET": "10.213.240.0/24", "BPFLEET_LAB_PORT_BASE": "43300"}


def bpfleet(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "bpfleet.cli", *args], capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, **LAB}, cwd=ROOT, stdin=subprocess.DEVNULL)
    return p


def must(p: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if p.returncode != 0:
        raise SystemExit(f"{what}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p


def build_versions(registry: Path, work: Path, count: int) -> list[str]:
    """syscalls 1.0.0 .. 1.<count>.0: the built-in program under new version numbers."""
    dirs, versions = [], [f"1.{i}.0" for i in range(count + 1)]
    for v in versions:
        d = work / v / "syscalls"
        shutil.copytree(BUILTIN_PROGRAMS / "syscalls", d)
        m = d / "manifest.toml"
        m.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{v}"', m.read_text()))
        dirs.append(str(d))
    must(bpfleet("programs", "build", "--registry", str(registry), *dirs), "programs build")
    return versions


def rollout(inventory: str, registry: Path, journal: Path, version: str, forks: int, bake: float) -> dict:
    t0 = time.monotonic()
    p = bpfleet("rollout", f"syscalls@{version}", "-i", inventory, "--registry", str(registry),
                "--journal", str(journal), "--bake", str(bake), "--forks", str(forks), "--json")
    cli_wall = time.monotonic() - t0
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    if not events or events[-1].get("kind") != "result" or p.returncode != 0:
        raise SystemExit(f"rollout {version} failed (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-2000:]}")
    res = events[-1]
    bakes = sum(1 for e in events if e.get("kind") == "bake") * bake
    overhead = res["wall_seconds"] - res["ansible_seconds"] - bakes
    return {"version": version, "forks": forks, "cli_wall": round(cli_wall, 2), "wall": res["wall_seconds"],
            "ansible": res["ansible_seconds"], "bake": bakes, "runs": res["runs"],
            "waves": sum(1 for e in events if e.get("kind") == "wave_started"),
            "overhead": round(overhead, 2), "overhead_pct": round(100 * overhead / res["wall_seconds"], 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,20,50", help="fleet sizes, ascending (default %(default)s)")
    ap.add_argument("--forks", default="5,10,25", help="fork counts (default %(default)s)")
    ap.add_argument("--bake", type=float, default=1.0, help="bake seconds per wave (default %(default)s)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep-lab", action="store_true", help="leave the lab up at the end")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_rollout: run as root (the lab needs network namespaces)")
    sizes = sorted(int(s) for s in args.sizes.split(","))
    forks = [int(f) for f in args.forks.split(",")]
    print(f"# {machine()}\n# sizes {sizes}, forks {forks}, bake {args.bake} s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bpfleet-bench-rollout-"))
    registry, journal = tmp / "registry", tmp / "journal.db"
    results, ok = [], False
    try:
        versions = iter(build_versions(registry, tmp / "src", len(sizes) * len(forks)))
        first = next(versions)
        must(bpfleet("lab", "down"), "lab down")
        for n in sizes:
            t = time.monotonic()
            lab = json.loads(must(bpfleet("lab", "up", str(n), "--json"), f"lab up {n}").stdout)
            up = time.monotonic() - t
            t = time.monotonic()
            must(bpfleet("fleet", "install", "-i", lab["inventory"], "--registry", str(registry),
                         "--journal", str(journal), "--program", f"syscalls@{first}", "--forks", "25",
                         "--json"), f"fleet install ({n} hosts)")
            print(f"{n:3} hosts: lab up {up:.1f} s, fleet install {time.monotonic() - t:.1f} s", flush=True)
            for f in forks:
                r = {"hosts": n, **rollout(lab["inventory"], registry, journal, next(versions), f, args.bake)}
                results.append(r)
                print(f"{n:3} hosts  forks {f:2}  wall {r['wall']:6.1f} s  ansible {r['ansible']:6.1f} s  "
                      f"bake {r['bake']:4.1f} s  overhead {r['overhead']:5.2f} s ({r['overhead_pct']:.1f}%)  "
                      f"waves {r['waves']}  runs {r['runs']}", flush=True)
        ok = True
    finally:
        if not args.keep_lab:
            bpfleet("lab", "down")
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} (the journal and every Ansible run's artifacts under runs/)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "bake": args.bake, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
