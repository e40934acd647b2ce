"""bcc-source programs on a host without kernel headers (this one): reported not_applicable,
with the reason, in /status, the metrics and --check; never a failure, and the CO-RE programs
beside them run. (With headers they compile and count: tests/kernel_matrix, in a Debian 6.1 VM.)"""
from __future__ import annotations

import pytest

from harness import deadline_poll, run_bpfleet

BCC_PROGRAMS = ("disksnoop", "tcpv4connect")


@pytest.fixture(scope="module")
def no_headers():
    from exporter.bcc import not_applicable_reason
    if not_applicable_reason() is None:
        pytest.skip("this host has kernel headers: bcc programs run here (tests/kernel_matrix)")


def test_bcc_programs_are_not_applicable_without_headers(exporters, no_headers):
    e = exporters({"disksnoop": {}, "tcpv4connect": {}, "syscalls": {}})
    e.wait_attached("syscalls")
    for name in BCC_PROGRAMS:
        p = deadline_poll(lambda: (p := e.program(name)) and p["state"] != "stopped" and p, 10,
                          what=f"{name} state")
        assert p["state"] == "not_applicable" and p["error"] is None and p["load_errors"] == 0, p
        assert "no kernel headers for" in p["not_applicable"] and "linux-headers-" in p["not_applicable"]
    m = e.metrics()
    assert {s.labels["program"] for s in m.find("bpfleet_program_not_applicable")} == set(BCC_PROGRAMS)
    assert m.value("bpfleet_program_attached", program="disksnoop") == 0


def test_check_mode_accepts_not_applicable(registry, tmp_path, no_headers):
    from harness import TRACKER, config_text, free_port
    cfg = tmp_path / "c.toml"
    cfg.write_text(config_text(f"127.0.0.1:{free_port()}", TRACKER.new_pin_root(), str(tmp_path / "a.sock"),
                               {"disksnoop": {}, "oomkill": {}}))
    r = run_bpfleet("exporter", "--check", "--config", str(cfg), "--registry", str(registry))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok   disksnoop@latest: not_applicable — no kernel headers" in r.stdout, r.stdout
