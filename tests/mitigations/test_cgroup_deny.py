"""cgroup_deny for real in a scratch cgroup v2: a deny-listed device (/dev/zero, c 1:5) and a
deny-listed sysctl write (net/ipv4/ip_forward, written inside a throwaway network namespace so
the host's value is never touched) are refused with EPERM in enforce mode, counted but allowed
in monitor mode; other devices and processes outside the cgroup are not affected. ~5 s."""
from __future__ import annotations

import pytest

from harness import deadline_poll
from mitkit import DENIED_DEVICE, DENIED_SYSCTL, READ_ZERO, WRITE_SYSCTL, ScratchCgroup

pytestmark = pytest.mark.live


def _decisions(e, action: str, reason: str) -> float:
    return sum(s.value for s in e.metrics().find("cgroup_deny_decisions_total", action=action, reason=reason))


def test_devices_and_sysctl_writes_refused_in_enforce_counted_in_monitor(start_exporter):
    with ScratchCgroup() as cg:
        e = start_exporter(f'[mitigations.cgroup_deny]\nmode = "monitor"\n'
                           f'lists = {{ deny_devices = ["{DENIED_DEVICE}"], deny_sysctls = ["{DENIED_SYSCTL}"] }}\n'
                           f'attach = {{ cgroup = "{cg.path}" }}\n')
        st = next(m for m in e.status()["mitigations"] if m["name"] == "cgroup_deny")
        assert st["state"] == "monitor", st

        # monitor: allowed, counted
        assert cg.run(*READ_ZERO).returncode == 0
        assert cg.run(*WRITE_SYSCTL).returncode == 0
        assert _decisions(e, "would_block", "denied_device") >= 1
        assert _decisions(e, "would_block", "denied_sysctl_write") == 1

        code, reply = e.admin("PUT", "/mitigations/cgroup_deny/mode", {"mode": "enforce"})
        assert code == 200, reply
        r = cg.run(*READ_ZERO)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r
        r = cg.run(*WRITE_SYSCTL)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, r
        assert _decisions(e, "blocked", "denied_sysctl_write") == 1
        assert _decisions(e, "blocked", "denied_device") >= 1
        # other devices in the cgroup, and the same device outside it, are fine
        assert cg.run("sh", "-c", "head -c1 /dev/urandom > /dev/null").returncode == 0
        assert open("/dev/zero", "rb").read(1) == b"\0"

        # the list is live: drop the device, the sysctl stays refused
        code, reply = e.admin("PUT", "/mitigations/cgroup_deny/lists/deny_devices", {"entries": []})
        assert code == 200 and reply["removed"] == 1, reply
        assert cg.run(*READ_ZERO).returncode == 0
        assert cg.run(*WRITE_SYSCTL).returncode != 0

        # events carry the process, its cgroup and what it tried
        deadline_poll(lambda: e.metrics().value("bpfleet_ringbuf_events_total", program="cgroup_deny") >= 4,
                      5, what="cgroup_deny events")
        m = e.metrics()
        assert m.value("cgroup_deny_sysctl_hits_total", sysctl="net/ipv4/ip_forward") == 3

        code, _ = e.admin("DELETE", "/mitigations/cgroup_deny")
        assert code == 200
        assert cg.run(*WRITE_SYSCTL).returncode == 0
        e.stop()
