"""matrix.py on synthetic data: rows from /status and two scrapes, and the generated page."""
from __future__ import annotations

import matrix

BEFORE = """# TYPE syscalls_total counter
syscalls_total{syscall="getppid"} 10
syscalls_total{syscall="read"} 5
"""
AFTER = """# TYPE syscalls_total counter
syscalls_total{syscall="getppid"} 5010
syscalls_total{syscall="read"} 9
# TYPE bpfleet_program_run_time_seconds_total counter
bpfleet_program_run_time_seconds_total{program="syscalls",bpf_program="sys_enter"} 0.0005
# TYPE bpfleet_program_run_count_total counter
bpfleet_program_run_count_total{program="syscalls",bpf_program="sys_enter"} 10000
"""
STATUS = {"programs": [
    {"name": "syscalls", "version": "1.0.0", "state": "attached", "variant": None, "variants": []},
    {"name": "tcp", "version": "1.1.0", "state": "failed", "variant": None, "error": "boom",
     "variants": [{"variant": "fentry", "state": "unavailable", "reason": "no BPF trampolines"}]},
]}


def test_rows_count_growth_and_cost():
    syscalls, tcp = matrix.rows(STATUS, BEFORE, AFTER)
    assert (syscalls.program, syscalls.counted, syscalls.wanted, syscalls.runs) == ("syscalls", 5000, 5000, 10000)
    assert syscalls.ns_per_event == 50 and syscalls.ok
    assert not tcp.ok and tcp.note == "boom" and tcp.passed_over == [("fentry", "unavailable", "no BPF trampolines")]


def test_render_says_it_is_generated_and_lists_refusals():
    run = matrix.KernelRun("6.1.0-50-amd64", "lab VM", matrix.rows(STATUS, BEFORE, AFTER), {"getppid": 5000},
                           {"total": 12.0})
    page = matrix.render([run])
    assert page.startswith("<!-- GENERATED FILE: written by the kernel-matrix test run")
    assert "## 6.1.0-50-amd64 — lab VM" in page
    assert "| syscalls | 1.0.0 | attached | (no variants) | 5000 syscalls_total (≥ 5000) | 50 | 10000 |" in page
    assert "- tcp / fentry: unavailable — no BPF trampolines" in page and "- tcp: failed — boom" in page
