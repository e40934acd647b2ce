"""exporter/probe.py against this machine's real kernel: each kind of requirement, answered by
the kernel (libbpf's probe API, a minimal fentry load, BTF, tracefs, kallsyms)."""
from __future__ import annotations

import os

import pytest

from bpfleet.variants import Requirement as R
from exporter import probe

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="probes load BPF programs: run as root")


def test_what_this_kernel_has():
    for req in (R("kernel_btf"), R("prog_type", "tracepoint"), R("prog_type", "raw_tracepoint"),
                R("tracefs_event", target="sched/sched_switch"), R("tracefs_event", target="*/sys_enter"),
                R("btf_tracepoint", target="sched_switch"), R("ksym", target="tcp_set_state"),
                R("helper", "ktime_get_ns", "tracepoint")):
        f = probe.find(req)
        assert f.ok and f.reason == "", f


@pytest.mark.parametrize("req, words", [
    (R("tracefs_event", target="sched/no_such_event"), "no tracepoint sched/no_such_event in tracefs"),
    (R("btf_tracepoint", target="no_such_tp"), "no BTF-typed tracepoint no_such_tp"),
    (R("ksym", target="no_such_function_x"), "no kernel function no_such_function_x in /proc/kallsyms"),
    (R("trampoline", "fentry", "no_such_function_x"), "no function no_such_function_x in the kernel's BTF"),
    (R("prog_type", "no_such_type"), "libbpf knows no program type"),
    (R("helper", "no_such_helper", "tracepoint"), "the kernel has no helper bpf_no_such_helper"),
])
def test_what_it_lacks_says_why(req, words):
    f = probe.find(req)
    assert not f.ok and words in f.reason, f


def test_trampolines_probe_agrees_with_a_real_load():
    """The probe loads a `return 0` fentry program; its verdict is what loading a real one gets
    (tests/integration/test_variants_live.py loads tcp, whose fentry variant it judges)."""
    f = probe.find(R("trampoline", "fentry", "tcp_set_state"))
    from exporter.libbpf import probe as lp
    assert f.ok == (lp.probe_trampoline("fexit", "tcp_set_state") == 0)
    if not f.ok:
        assert "no BPF trampolines on this kernel" in f.reason
