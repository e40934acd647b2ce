"""Attach variants chosen by probing this kernel (docs/manifest.md#variants), for real.

On this machine fentry is refused (EPERM: no BPF trampolines) and kprobes are not built in, so
tcp (variants fentry, kprobe, tracepoint) must run its tracepoint variant and say why the other
two were passed over, in /status and in bpfleet_program_variant; forcing a refused variant
falls back to the same choice, not an error."""
from __future__ import annotations

import socket

import pytest

from harness import deadline_poll


def _connect_loopback(n: int) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(n)
    for _ in range(n):
        c = socket.create_connection(srv.getsockname())
        a, _ = srv.accept()
        a.close()
        c.close()
    srv.close()


def _kernel_allows_trampolines() -> bool:
    from exporter.libbpf import features as probe
    return probe.probe_trampoline("fentry", "inet_sk_state_store") == 0


@pytest.fixture(scope="module")
def here_lacks_fentry():
    if _kernel_allows_trampolines():
        pytest.skip("this kernel allows fentry: the fallback is tested where it does not")


def _verdicts(status: dict) -> dict:
    return {v["variant"]: v for v in status["variants"]}


def test_tcp_falls_back_to_tracepoint_with_reasons(exporters, here_lacks_fentry):
    e = exporters({"tcp": {}})
    e.wait_attached("tcp")
    st = e.program("tcp")
    assert st["variant"] == "tracepoint", st
    v = _verdicts(st)
    assert list(v) == ["fentry", "kprobe", "tracepoint"]
    assert v["fentry"] == {"variant": "fentry", "state": "unavailable", "reason":
                           "no BPF trampolines on this kernel (a minimal fentry/fexit program is "
                           "refused with EPERM)"}, v
    assert v["kprobe"]["state"] == "unavailable" and "kprobes are not available" in v["kprobe"]["reason"], v
    assert v["tracepoint"]["state"] == "running" and "passed over: fentry, kprobe" in v["tracepoint"]["reason"]
    m = e.metrics()
    assert m.value("bpfleet_program_variant", program="tcp", variant="tracepoint", state="running") == 1
    assert m.value("bpfleet_program_variant", program="tcp", variant="fentry", state="unavailable") == 0
    # Only the chosen variant's BPF programs were loaded (the others had autoload off).
    assert set(st["programs"]) == {"inet_sock_set_state", "tcp_retransmit_skb"}, st["programs"]
    # And it counts.
    _connect_loopback(5)
    deadline_poll(lambda: sum(s.value for s in e.metrics().find("tcp_connections_total", direction="passive"))
                  >= 5, 10, what="passive connections counted")


def test_forcing_a_refused_variant_falls_back(exporters, here_lacks_fentry):
    e = exporters({"tcp": {"variant": "fentry"}})
    e.wait_attached("tcp")
    st = e.program("tcp")
    assert st["variant"] == "tracepoint" and st["variant_forced"] == "fentry", st
    v = _verdicts(st)
    assert v["fentry"]["reason"].startswith("forced by ") and \
        v["fentry"]["reason"].split(", but ")[0].endswith("exporter.toml: programs.tcp.variant") and \
        v["fentry"]["reason"].endswith("fell back to tracepoint"), v
    assert st["error"] is None and st["load_errors"] == 0


def test_forcing_the_running_variant_and_an_unknown_one(exporters):
    e = exporters({"tcp": {"variant": "tracepoint"}, "oomkill": {"variant": "fentry"}})
    e.wait_attached("tcp")
    st = e.program("tcp")
    running = _verdicts(st)["tracepoint"]
    assert running["state"] == "running" and running["reason"].startswith("forced by ") and \
        running["reason"].endswith("exporter.toml: programs.tcp.variant"), running
    bad = deadline_poll(lambda: (p := e.program("oomkill")) and p["state"] == "failed" and p, 10,
                        what="oomkill failed")
    assert "programs.oomkill.variant: " in bad["error"] and "no variant 'fentry'" in bad["error"], bad


TWO_SRC = '''#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
__u64 twoobj_calls = 0;
SEC("%s")
int %s(void *ctx)
{
	__sync_fetch_and_add(&twoobj_calls, 1);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
'''
TWO_MANIFEST = '''name = "twoobj"
version = "1.0.0"
description = "a variant in an object of its own"
license = "GPL-2.0"
[requires]
program_types = ["raw_tracepoint", "tracing"]
[[variants]]
name = "fentry"
object = "twoobj_fentry"
[[variants]]
name = "raw_tp"
programs = ["on_getppid"]
[[metrics]]
name = "twoobj_calls_total"
type = "counter"
help = "calls"
global = "twoobj_calls"
'''


def test_variant_in_an_object_of_its_own(exporters, tmp_path, here_lacks_fentry):
    from harness import TRACKER, build, write_program
    TRACKER.note_names("on_getppid", "fentry_getppid")
    d = write_program(tmp_path / "src", "twoobj", TWO_SRC % ("raw_tp/sys_enter", "on_getppid"), TWO_MANIFEST)
    (d / "twoobj_fentry.bpf.c").write_text(TWO_SRC % ("fentry/vfs_read", "fentry_getppid"))
    reg = tmp_path / "reg"
    build(reg, d)
    assert (reg / "twoobj/1.0.0/twoobj_fentry.bpf.o").is_file()
    assert (reg / "twoobj/1.0.0/twoobj_fentry.bpf.c").is_file()
    e = exporters({"twoobj": {}}, registry=reg)
    e.wait_attached("twoobj")
    st = e.program("twoobj")
    v = _verdicts(st)
    assert st["variant"] == "raw_tp" and v["fentry"]["state"] == "unavailable", st
    assert "no BPF trampolines" in v["fentry"]["reason"]
    deadline_poll(lambda: e.metrics().value("twoobj_calls_total") > 0, 10, what="calls counted")


def test_variant_object_missing_names_the_field(tmp_path):
    from harness import build, write_program
    d = write_program(tmp_path / "src", "twoobj", TWO_SRC % ("raw_tp/sys_enter", "on_getppid"), TWO_MANIFEST)
    res = build(tmp_path / "reg", d, expect_ok=False)[0]
    assert res["status"] == "failed"
    assert any(p["field"] == "variants" and "missing twoobj_fentry.bpf.c" in p["message"] for p in res["problems"]), res


REFUSED_SRC = '''#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
__u64 refusal_calls = 0;
SEC("raw_tp/sys_enter")
int bad_prog(void *ctx)
{
	/* passes every probe, fails the verifier: a load through a scalar */
	return *(volatile int *)(long)refusal_calls;
}
SEC("raw_tp/sys_enter")
int good_prog(void *ctx)
{
	__sync_fetch_and_add(&refusal_calls, 1);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
'''
REFUSED_MANIFEST = '''name = "refusal"
version = "1.0.0"
description = "the first variant passes the probes but the verifier refuses it"
license = "GPL-2.0"
[requires]
program_types = ["raw_tracepoint"]
[[variants]]
name = "bad"
programs = ["bad_prog"]
[[variants]]
name = "good"
programs = ["good_prog"]
[[metrics]]
name = "refusal_calls_total"
type = "counter"
help = "calls"
global = "refusal_calls"
'''


def test_a_variant_the_verifier_refuses_falls_back_to_the_next(exporters, tmp_path):
    from harness import TRACKER, build, write_program
    TRACKER.note_names("bad_prog", "good_prog")
    d = write_program(tmp_path / "src", "refusal", REFUSED_SRC, REFUSED_MANIFEST)
    reg = tmp_path / "reg"
    build(reg, d)
    e = exporters({"refusal": {}}, registry=reg)
    e.wait_attached("refusal")
    st = e.program("refusal")
    v = _verdicts(st)
    assert st["variant"] == "good" and v["bad"]["state"] == "refused", st
    assert "kernel refused to load" in v["bad"]["reason"] and "bad_prog" in v["bad"]["reason"], v
    assert v["good"]["reason"] == "the best this kernel allows (passed over: bad)"
    deadline_poll(lambda: e.metrics().value("refusal_calls_total") > 0, 10, what="calls counted")


def test_verify_reports_the_variant_that_would_run(registry, here_lacks_fentry):
    import json
    from harness import run_bpfleet
    r = run_bpfleet("programs", "verify", "tcp", "--variant", "kprobe", "--json", "--registry", str(registry))
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["ok"] and out["variant"] == "tracepoint", out
    v = {x["variant"]: x for x in out["variants"]}
    assert v["kprobe"]["reason"].startswith("forced by --variant, but kprobes are not available")
