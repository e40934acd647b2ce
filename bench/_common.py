"""Shared by the benchmarks: build programs into a throw-away registry, pin under a private
bpffs directory, and describe the machine. Not a benchmark itself."""
from __future__ import annotations

import os
import platform
import shutil
import socket
import statistics
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_PROGRAMS = ROOT / "bench" / "programs"
BUILTIN_PROGRAMS = ROOT / "programs"
BPFFS = "/sys/fs/bpf"


def build_into(registry: Path, src_dir: Path):
    """Compile `src_dir` into `registry` and return its Artifact; raise with the problems."""
    from core import registry as reg
    from orchestrator.build import build_dir
    r = build_dir(src_dir, registry)
    if r.problems:
        raise SystemExit(f"build of {src_dir} failed:\n" + "\n".join(f"  {p}" for p in r.problems))
    name, _, version = r.ref.partition("@")
    return reg.resolve(registry, name, version)


class Workspace:
    """A temp registry and a private pin root; both removed on exit, whatever happens."""

    def __enter__(self):
        self.registry = Path(tempfile.mkdtemp(prefix="bpfleet-bench-reg-"))
        self.pin_root = tempfile.mkdtemp(prefix="bpfleet-bench-", dir=BPFFS)
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.registry, ignore_errors=True)
        # Pins keep maps and links alive after close: remove every one of ours.
        shutil.rmtree(self.pin_root, ignore_errors=True)


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return (f"kernel {platform.release()}, {cpus} CPUs{f' ({model})' if model else ''}, "
            f"Python {platform.python_version()}")


def best_median(xs: list[float]) -> tuple[float, float]:
    return min(xs), statistics.median(xs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
