"""xdp_denylist for real: a veth pair into a scratch netns, UDP from a denied and an allowed
source address, the exporter attaching the mitigation to the host end. ~5 s."""
from __future__ import annotations

import pytest

from harness import Metrics, deadline_poll
from mitkit import VethPair

pytestmark = pytest.mark.live
N = 7


@pytest.fixture
def veth():
    pair = VethPair().up()
    yield pair
    pair.down()


def _config(veth: VethPair, mode: str, extra: str = "") -> str:
    return (f"[mitigations.xdp_denylist]\nmode = \"{mode}\"\n"
            f"lists = {{ deny_v4 = [\"{veth.DENIED_PREFIX}\"] }}\n"
            f"attach = {{ interfaces = [\"{veth.host}\"] }}\n{extra}")


def _decisions(m: Metrics, action: str) -> float:
    found = m.find("xdp_denylist_decisions_total", action=action, reason="denied_ipv4_prefix")
    return sum(s.value for s in found)


def _mitigation(e, name="xdp_denylist") -> dict:
    return next(m for m in e.status()["mitigations"] if m["name"] == name)


def test_monitor_counts_enforce_drops_and_the_list_updates_live(veth, start_exporter):
    e = start_exporter(_config(veth, "monitor"))
    assert veth.xdp_attached()
    st = _mitigation(e)
    assert (st["state"], st["mode"]) == ("monitor", "monitor"), st
    assert st["lists"]["deny_v4"]["entries"] == [veth.DENIED_PREFIX]

    # monitor: everything passes, the denied source is counted as would_block
    sources = {veth.DENIED_SRC: N, veth.ALLOWED_SRC: N}
    assert veth.send(sources) == sources
    m = e.metrics()
    assert _decisions(m, "would_block") == N and _decisions(m, "blocked") == 0
    prefix, plen = veth.DENIED_PREFIX.split("/")
    assert m.value("xdp_denylist_ipv4_prefix_packets_total", prefix=prefix, prefixlen=plen) == N
    assert m.value("bpfleet_mitigation_state", mitigation="xdp_denylist", state="monitor") == 1
    assert _mitigation(e)["decisions"] == {"would_block": N, "blocked": 0}   # what promote shows

    # enforce through the admin API, no reload: the denied source is dropped, the other passes
    prog_ids = {p["id"] for p in _our_progs(e)}
    code, reply = e.admin("PUT", "/mitigations/xdp_denylist/mode", {"mode": "enforce"})
    assert code == 200 and reply["mitigation"]["mode"] == "enforce", reply
    assert veth.send(sources) == {veth.DENIED_SRC: 0, veth.ALLOWED_SRC: N}
    m = e.metrics()
    assert _decisions(m, "blocked") == N and _decisions(m, "would_block") == N
    assert m.value("xdp_denylist_ipv4_prefix_packets_total", prefix=prefix, prefixlen=plen) == 2 * N

    # replace the deny-list live: now the other source is the denied one
    code, reply = e.admin("PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": [veth.ALLOWED_PREFIX]})
    assert code == 200 and (reply["added"], reply["removed"], reply["entries"]) == (1, 1, 1), reply
    assert veth.send(sources) == {veth.DENIED_SRC: N, veth.ALLOWED_SRC: 0}
    assert {p["id"] for p in _our_progs(e)} == prog_ids, "mode and list changes must not reload"

    # events went through the ring buffer (one per power-of-two count per prefix)
    deadline_poll(lambda: e.metrics().value("bpfleet_ringbuf_events_total", program="xdp_denylist") >= 2,
                  5, what="mitigation events")

    # revoke: detached at once, traffic flows, the state says so
    code, reply = e.admin("DELETE", "/mitigations/xdp_denylist")
    assert code == 200, reply
    assert not veth.xdp_attached()
    assert veth.send(sources) == sources
    assert _mitigation(e)["state"] == "revoked"
    assert e.metrics().value("bpfleet_mitigation_state", mitigation="xdp_denylist", state="revoked") == 1


def test_admin_api_bad_inputs_name_the_field(veth, start_exporter):
    e = start_exporter(_config(veth, "enforce"))
    cases = [
        ("PUT", "/mitigations/xdp_denylist/mode", {"mode": "block"}, 400, "body.mode"),
        ("PUT", "/mitigations/xdp_denylist/mode", {"mode": "enforce", "x": 1}, 400, "unknown field"),
        ("PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": ["10.0.0.1/33"]}, 400, "body.entries[0]"),
        ("PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": ["10.0.0.1/8"]}, 400, "host bits"),
        ("PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": ["2001:db8::/32"]}, 400, "IPv6"),
        ("PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": "10.0.0.0/8"}, 400, "array"),
        ("PUT", "/mitigations/xdp_denylist/lists/nope", {"entries": []}, 404, "no list 'nope'"),
        ("PUT", "/mitigations/other/mode", {"mode": "enforce"}, 409, "not running"),
        ("PUT", "/mitigations/xdp_denylist", {"mode": "enforce", "ttl": "soon"}, 400, "body.ttl"),
        ("PUT", "/mitigations/xdp_denylist", {"lists": {"deny_v4": ["x"]}}, 422, "lists.deny_v4[0]"),
        ("PUT", "/mitigations/xdp_denylist", {"attach": {"interfaces": ["nosuch0"]}}, 422, "nosuch0"),
    ]
    for method, path, body, code, needle in cases:
        got, reply = e.admin(method, path, body)
        assert got == code and needle in reply["error"], (path, body, got, reply)
    # the bad re-applies left the running one in place, still attached and enforcing
    assert _mitigation(e)["state"] == "enforce"
    assert veth.send({veth.DENIED_SRC: 3, veth.ALLOWED_SRC: 3}) == {veth.DENIED_SRC: 0, veth.ALLOWED_SRC: 3}
    code, reply = e.admin("PUT", "/mitigations/xdp_denylist",
                          {"mode": "enforce", "lists": {"deny_v4": [veth.DENIED_PREFIX]},
                           "attach": {"interfaces": [veth.host]}})
    assert code == 200 and reply["mitigation"]["state"] == "enforce", reply
    assert veth.send({veth.DENIED_SRC: 3, veth.ALLOWED_SRC: 3}) == {veth.DENIED_SRC: 0, veth.ALLOWED_SRC: 3}


def _our_progs(e) -> list[dict]:
    from harness import bpftool_json, fd_bpf_ids
    progs, _maps = fd_bpf_ids(e.proc.pid)
    return [p for p in bpftool_json("prog", "show") if p["id"] in progs and p.get("type") == "xdp"]
