"""exporter/kernel_features.py against this machine's real kernel. The reasons it gives for what is
missing; and, for every kind of program it judges, its verdict against the kernel's own: a
minimal program of that kind, compiled like orchestrator/build.py compiles the built-ins, really
loaded and attached through exporter/libbpf. The probe must say "no" exactly where the real
load or attach fails (here: fentry/fexit and lsm refused, no kprobes) and "yes" where it works."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orchestrator import build
from core import resources
from core.variants import Requirement as R, requirements_of_section
from exporter import kernel_features as probe
from exporter.libbpf import BpfObject
from harness import ROOT
from mitkit import cgroup2_root

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


def test_find_all_answers_as_find_and_keeps_no_kernel_btf():
    """One variant's requirements at once: the same answers, and the parsed kernel BTF (~6 MB)
    is not kept after (bench/bench_rss.py)."""
    from exporter.libbpf import features
    reqs = [R("btf_tracepoint", target="sched_switch"), R("ksym", target="tcp_set_state"),
            R("ksym", target="no_such_function_x"), R("trampoline", "fentry", "tcp_set_state"),
            R("btf_tracepoint", target="no_such_tp")]
    together = probe.find_all(reqs)
    assert not features.kernel_btf_held()
    assert together == [probe.find(r) for r in reqs]
    assert [f.ok for f in together[:3]] == [True, True, False] and not together[4].ok


def _libc() -> str:
    with open("/proc/self/maps") as f:
        return next(l.split()[-1] for l in f if "/libc.so" in l or "/libc-" in l)


LIBC = _libc()


# SEC() -> what the program returns (the verifier checks the range per type).
SECTIONS = {
    "tracepoint/sched/sched_switch": 0, "raw_tp/sched_switch": 0, "tp_btf/sched_switch": 0,
    "fentry/tcp_set_state": 0, "fexit/tcp_set_state": 0,
    "kprobe/tcp_set_state": 0, "kretprobe/tcp_set_state": 0, "lsm/file_open": 0,
    f"uprobe/{LIBC}:getpid": 0, "perf_event": 0, "xdp": 2, "cgroup_skb/ingress": 1,
}
# bpfleet attaches no perf_event programs (they need a perf_event_open fd, which exporter/libbpf
# does not make): for them the kernel's answer is the load alone.
LOAD_ONLY = {"perf_event"}
SOURCE = """#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
SEC("%s") int minimal(void *ctx) { return %d; }
"""
# Run in a child in a network namespace of its own: XDP attaches to that namespace's lo, so no
# interface of the machine (or of a parallel test) is touched; the links go when it exits.
LOAD_AND_ATTACH = """import sys
from exporter.libbpf import BpfObject, LibbpfError
try:
    with BpfObject(sys.argv[1]) as obj:
        obj.load()
        if sys.argv[3] == "attach":
            obj.attach_all(interfaces=("lo",), cgroup=sys.argv[2])
    print("ok")
except LibbpfError as e:
    print(e.explain().splitlines()[0])
"""


@pytest.fixture
def cgroup():
    d = cgroup2_root() / f"bpfleet-probe-{os.getpid()}"
    d.mkdir(exist_ok=True)
    yield d
    d.rmdir()


@pytest.mark.parametrize("section", SECTIONS, ids=[s.replace(LIBC, "libc") for s in SECTIONS])
def test_probe_verdict_is_the_kernels(section, tmp_path, cgroup):
    (tmp_path / "minimal.bpf.c").write_text(SOURCE % (section, SECTIONS[section]))
    obj = tmp_path / "minimal.bpf.o"
    build.compile_program(tmp_path, "minimal", obj, [resources.include_dir()])
    with BpfObject(str(obj)) as o:          # what the loader sees before it asks the probe
        (prog,) = o.programs()
    findings = [probe.find(r) for r in requirements_of_section(prog.section, prog.type)]
    says_yes = all(f.ok for f in findings)

    r = subprocess.run(["unshare", "--net", sys.executable, "-c", LOAD_AND_ATTACH, str(obj), str(cgroup),
                        "load" if section in LOAD_ONLY else "attach"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    kernel = r.stdout.strip()
    assert says_yes == (kernel == "ok"), (
        f"{section}: the probe says {'yes' if says_yes else 'no: ' + '; '.join(f.reason for f in findings if not f.ok)}"
        f", the kernel says {kernel}")
