"""Every built-in program on every kernel of the matrix: the chosen variant loads, attaches and
produces metrics under the workload (bcc-source programs: not_applicable only where the kernel
has no headers; on 6.12 tcpv4connect fails to compile with bookworm's bcc 0.26, reported as such). Kernels: this machine's, and lab VMs on Debian bookworm's 6.1 and bookworm-
backports' 6.12 (one image, one VM boot per kernel). Writes docs/kernel-matrix.md. Cost: one VM
boot and one exporter run (plus the forced-variant runs) per VM kernel (see the "bpfleet kernel
matrix" summary for the times). Each kernel's tests take only that kernel's run (a fixture
each): the host's pass or fail on their own when no VM boots. The page is rewritten only when
all pass (conftest.pytest_sessionfinish)."""
from __future__ import annotations

import pytest

import matrix
from harness import BUILTINS, PROGRAMS_DIR

pytestmark = pytest.mark.vm


def _is_bcc(name: str) -> bool:
    return "[bcc]" in (PROGRAMS_DIR / name / "manifest.toml").read_text()


def test_every_builtin_has_a_workload_expectation():
    assert set(BUILTINS) <= set(matrix.EXPECT), f"add the new program(s) to matrix.EXPECT: " \
        f"{sorted(set(BUILTINS) - set(matrix.EXPECT))}"


# test id -> the session fixture holding that kernel's run
RUN_OF = {"host": "host_run", "vm": "vm_run", "vm-backports": "vm_backports_run"}


@pytest.mark.parametrize("kernel", ["host", "vm", "vm-backports"])
def test_every_program_loads_attaches_and_counts(request, kernel):
    run = request.getfixturevalue(RUN_OF[kernel])
    rows = {r.program: r for r in run.rows}
    assert set(rows) == set(BUILTINS)
    bad = []
    for name, r in rows.items():
        if r.state == "not_applicable" and _is_bcc(name) and "no kernel headers" in r.note and kernel == "host":
            continue      # this machine has no kernel headers; the VM has them and must run it
        if r.state == "failed" and _is_bcc(name) and "bcc 0.26" in r.note and kernel == "vm-backports":
            continue      # conftest.BCC_TOO_OLD: the distribution's bcc predates these headers
        if not r.ok:
            bad.append(f"{name}: state {r.state}, variant {r.variant}, counted {r.counted} < {r.wanted} "
                       f"{r.note}")
    assert not bad, f"on {run.kernel} ({run.where}):\n" + "\n".join(bad)


@pytest.mark.parametrize("kernel", ["vm", "vm-backports"])
def test_variants_differ_where_kernels_differ(request, host_run, kernel):
    """On the VMs' kernels (BPF trampolines work) the fentry variants run; here they are refused
    with the reason, and the tracepoint ones run."""
    host, vm = ({r.program: r for r in run.rows} for run in (host_run, request.getfixturevalue(RUN_OF[kernel])))
    assert vm["tcp"].variant == "fentry" and vm["biolatency"].variant == "fentry"
    if host["tcp"].variant != "fentry":
        assert host["tcp"].variant == "tracepoint"
        assert any(v == "fentry" and "trampolines" in why for v, _s, why in host["tcp"].passed_over)


@pytest.mark.parametrize("kernel", ["vm", "vm-backports"])
def test_every_other_variant_loads_and_counts_in_the_vm(request, kernel):
    """The VMs' kernels allow every variant: each was forced in an extra run, ran as forced,
    and counted (its cost is in docs/kernel-matrix.md)."""
    vm = request.getfixturevalue(RUN_OF[kernel])
    forced = {(r.program, r.forced): r for r in vm.forced_rows}
    assert {("tcp", "fentry"), ("tcp", "kprobe"), ("tcp", "tracepoint"), ("biolatency", "fentry"),
            ("biolatency", "tp_btf")} <= set(forced), forced
    bad = [f"{p}/{v}: ran {r.variant}, state {r.state}, counted {r.counted} < {r.wanted} {r.note}"
           for (p, v), r in forced.items() if r.variant != v or not r.ok]
    assert not bad, "\n".join(bad)
