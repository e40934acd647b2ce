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


BEFORE_RUNS = BEFORE + """# TYPE bpfleet_program_run_time_seconds_total counter
bpfleet_program_run_time_seconds_total{program="syscalls",bpf_program="sys_enter"} 0.0001
# TYPE bpfleet_program_run_count_total counter
bpfleet_program_run_count_total{program="syscalls",bpf_program="sys_enter"} 2000
"""


def test_cost_is_over_the_workload_only():
    (syscalls, _tcp) = matrix.rows(STATUS, BEFORE_RUNS, AFTER)
    assert syscalls.runs == 8000 and syscalls.ns_per_event == 50


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


def test_variant_passes_force_each_not_ruled_out_variant_once():
    status = {"programs": [
        {"name": "tcp", "state": "attached", "variants": [
            {"variant": "fentry", "state": "running", "reason": ""},
            {"variant": "kprobe", "state": "not_tried", "reason": ""},
            {"variant": "tracepoint", "state": "not_tried", "reason": ""}]},
        {"name": "biolatency", "state": "attached", "variants": [
            {"variant": "fentry", "state": "running", "reason": ""},
            {"variant": "tp_btf", "state": "not_tried", "reason": ""}]},
        {"name": "x", "state": "attached", "variants": [
            {"variant": "a", "state": "unavailable", "reason": "no"},
            {"variant": "b", "state": "running", "reason": ""}]},
        {"name": "syscalls", "state": "attached", "variants": []}]}
    assert matrix.variant_passes(status) == [{"tcp": "fentry", "biolatency": "fentry"},
                                             {"tcp": "kprobe", "biolatency": "tp_btf"},
                                             {"tcp": "tracepoint"}]
    assert matrix.variant_passes(STATUS) == []


def test_render_compares_the_chosen_variant_with_the_forced_ones():
    chosen = matrix.ProgramRow("tcp", "1.1.0", "attached", "fentry", 21, 20, 7000.0, 200)
    fentry = matrix.ProgramRow("tcp", "1.1.0", "attached", "fentry", 21, 20, 7000.0, 200, forced="fentry")
    kprobe = matrix.ProgramRow("tcp", "1.1.0", "attached", "kprobe", 22, 20, 9000.0, 220, forced="kprobe")
    fell = matrix.ProgramRow("tcp", "1.1.0", "attached", "fentry", 20, 20, 7100.0, 200, forced="tracepoint")
    run = matrix.KernelRun("6.1", "lab VM", [chosen], {}, {}, [fentry, kprobe, fell])
    page = matrix.render([run])
    assert "| tcp | fentry | forced, the kernel's choice | 21 (≥ 20) | 7000 | 200 | 1400 |" in page
    assert "| tcp | kprobe | forced | 22 (≥ 20) | 9000 | 220 | 1980 |" in page
    assert "| tcp | fentry | forced tracepoint, fell back |" in page


def test_bcc_too_old_explains_only_bcc_compile_failures():
    failed = matrix.ProgramRow("tcpv4connect", "1.0.0", "failed", None, 0, 20, None, 0,
                               note="/r/t.bcc.c: bcc could not compile, load or attach it: Failed")
    other = matrix.ProgramRow("tcp", "1.0.0", "failed", None, 0, 20, None, 0, note="verifier: no")
    ok = matrix.ProgramRow("disksnoop", "1.0.0", "attached", None, 5, 1, None, 3)
    out = matrix.bcc_too_old([failed, other, ok], lambda n: n != "tcp", "bcc 0.26 is too old")
    assert [r.state for r in out] == ["failed", "failed", "attached"]
    assert out[1].note == "verifier: no"
    assert out[0].note == ("bcc 0.26 is too old (the exporter: bcc could not compile, load or "
                           "attach it: Failed)")
    assert failed.state == "failed", "the input rows are not changed"


def _run(kernel: str) -> matrix.KernelRun:
    return matrix.KernelRun(kernel, "somewhere", matrix.rows(STATUS, BEFORE, AFTER), {}, {"total": 1.0})


def test_page_is_rewritten_only_from_a_complete_passing_matrix(tmp_path):
    doc = tmp_path / "kernel-matrix.md"
    doc.write_text("the committed page\n")
    runs = {"host": _run("6.18-host"), "vm": _run("6.1-vm"), "vm-backports": _run("6.12-vm")}
    without_vm = {k: r for k, r in runs.items() if k != "vm-backports"}
    said = matrix.write_page(doc, without_vm, [])
    assert said == "kernel-matrix.md NOT rewritten (the committed page stays): no vm-backports run"
    assert doc.read_text() == "the committed page\n"
    said = matrix.write_page(doc, runs, ["test_every_program_loads_attaches_and_counts[vm]"])
    assert said == ("kernel-matrix.md NOT rewritten (the committed page stays): 1 kernel-matrix "
                    "test(s) failed: test_every_program_loads_attaches_and_counts[vm]")
    assert doc.read_text() == "the committed page\n"
    assert matrix.why_not_write({}, ["t[host]"]) == "no host, vm, vm-backports run; 1 kernel-matrix " \
        "test(s) failed: t[host]"
    assert matrix.write_page(doc, runs, []) == "wrote kernel-matrix.md"
    page = doc.read_text()
    assert page.index("## 6.18-host") < page.index("## 6.1-vm") < page.index("## 6.12-vm")
