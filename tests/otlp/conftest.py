"""Fixtures for the OTLP tests. The pure ones need nothing; the live ones start real exporters
through tests/integration/harness.py (root, clang and bpftool required) and a real OTLP
receiver (otlp_receiver.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:       # otlp_receiver.py, workload.py
    sys.path.insert(0, str(HERE))

from harness import live_skip_reason  # noqa: E402


@pytest.fixture(scope="session")
def otlp_registry(tmp_path_factory) -> Path:
    """exec, runqlat, biolatency and the otlpt test program, built into a fresh registry."""
    reason = live_skip_reason()
    if reason:
        pytest.skip(reason)
    from harness import PROGRAMS_DIR, build
    reg = tmp_path_factory.mktemp("otlp-registry")
    dirs = [PROGRAMS_DIR / "exec", PROGRAMS_DIR / "runqlat", PROGRAMS_DIR / "biolatency", HERE / "otlpt"]
    results = build(reg, *dirs)
    assert [r["status"] for r in results] == ["built"] * len(dirs), results
    return reg


class Workload:
    """tests/otlp/workload.py in a subprocess: the process the otlpt program watches."""

    def __init__(self, cwd: Path):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "workload.py")], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = json.loads(self.proc.stdout.readline())
        self.pid, self.fd = hello["pid"], hello["fd"]

    def __call__(self, *words) -> dict:
        self.proc.stdin.write(" ".join(map(str, words)) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    w = Workload(tmp_path_factory.mktemp("workload"))
    yield w
    w.close()
