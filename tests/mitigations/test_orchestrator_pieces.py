"""The pure pieces of `bpfleet mitigate`: a host's report -> HostMitigation, the outcome of an
apply or mode switch, the fleet-wide totals promote shows, and the settings apply sends
(checked against the manifest before any host is touched). <1 s."""
from __future__ import annotations

import argparse

import pytest

from core import manifest
from harness import PROGRAMS_DIR
from bpfleet.commands.fleet.common import UsageError
from orchestrator.engine.mitigate import host_mitigation, outcome, totals
from bpfleet.commands.mitigate import settings_from


def _report(state, mode=None, would=0, blocked=0, reason=None):
    return {"release": "6.1.0-50-amd64", "mitigation": {
        "state": state, "mode": mode, "version": "1.0.0", "reason": reason, "expires_at": 2e9,
        "decisions": {"would_block": would, "blocked": blocked}}}


def test_reports_outcomes_and_totals():
    rows = {"a": host_mitigation("a", True, _report("monitor", "monitor", 5), ""),
            "b": host_mitigation("b", True, _report("monitor", "monitor", 7, 0), ""),
            "c": host_mitigation("c", True, _report("not_applicable", reason="BPF-LSM is not active"), ""),
            "d": host_mitigation("d", False, None, "unreachable: ssh: connect timed out")}
    t = totals(rows)
    assert (t["hosts"], t["reachable"], t["running"], t["monitor"], t["would_block"], t["blocked"]) == (4, 3, 2, 2, 12, 0)
    assert t["not_running"] == {"c": "not_applicable: BPF-LSM is not active"}
    assert t["unreachable"] == {"d": "unreachable: ssh: connect timed out"}
    assert outcome(rows["a"], "a", "monitor").ok
    assert not outcome(rows["a"], "a", "enforce").ok          # asked for enforce, still monitor
    out = outcome(rows["c"], "c", "monitor")
    assert not out.ok and out.error == "not_applicable: BPF-LSM is not active"
    out = outcome(rows["d"], "d", "monitor")
    assert not out.ok and out.unreachable
    assert not outcome(None, "e", "monitor").ok


def _args(**kw):
    base = dict(list=[], ttl=None, mode="monitor", interface=[], cgroup=None)
    return argparse.Namespace(**{**base, **kw})


def test_apply_settings_are_checked_against_the_manifest():
    m, problems = manifest.load(str(PROGRAMS_DIR / "xdp_denylist" / "manifest.toml"))
    assert not problems
    s = settings_from(_args(list=["deny_v4=192.0.2.0/24,198.51.100.0/24"], interface=["eth0"], ttl="2h"),
                      m, "1.0.0", 1_700_000_000)
    assert s == {"version": "1.0.0", "mode": "monitor", "lists": {"deny_v4": ["192.0.2.0/24", "198.51.100.0/24"]},
                 "expires": "2023-11-15T00:13:20Z", "attach": {"interfaces": ["eth0"]}}
    # the manifest's ttl when none is given (7d)
    assert settings_from(_args(), m, "1.0.0", 0)["expires"] == "1970-01-08T00:00:00Z"
    for bad, needle in ((dict(list=["deny_v4=10.0.0.1/8"]), "--list deny_v4[0]"),
                        (dict(list=["allow=1.2.3.4/32"]), "LIST one of deny_v4, deny_v6"),
                        (dict(list=["deny_v4"]), "expected LIST=ENTRY"),
                        (dict(ttl="soon"), "--ttl")):
        with pytest.raises(UsageError) as e:
            settings_from(_args(**bad), m, "1.0.0", 0)
        assert needle in str(e.value), (bad, e.value)
