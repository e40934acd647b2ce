"""A mitigation retires itself: TTL expiry while running, an `expires` already past, and a
kernel at or after a fixed version — each logged, in /status and in bpfleet_mitigation_state.
One exporter, reloaded between steps. ~8 s."""
from __future__ import annotations

import os

import pytest

from harness import build, builtin_version, copy_program, copy_registry, deadline_poll
from mitkit import VethPair

pytestmark = pytest.mark.live


@pytest.fixture
def veth():
    pair = VethPair().up()
    yield pair
    pair.down()


def _state(e, name="xdp_denylist") -> dict:
    return next(m for m in e.status()["mitigations"] if m["name"] == name)


def _table(veth, **fields) -> str:
    body = "".join(f"{k} = {v}\n" for k, v in fields.items())
    return (f"[mitigations.xdp_denylist]\nmode = \"enforce\"\n{body}"
            f"lists = {{ deny_v4 = [\"{veth.DENIED_PREFIX}\"] }}\n"
            f"attach = {{ interfaces = [\"{veth.host}\"] }}\n")


def test_ttl_expiry_past_expiry_and_fixed_kernel_retire_it(veth, start_exporter, mit_registry, tmp_path):
    # the next patch version: the same program, declared fixed by this very kernel's branch
    release = os.uname().release
    branch = ".".join(release.split(".")[:2])
    base = builtin_version("xdp_denylist")
    major, minor, patch = base.split(".")
    fixed = f"{major}.{minor}.{int(patch) + 1}"
    src = copy_program("xdp_denylist", tmp_path / "src", version=fixed)
    manifest = src / "manifest.toml"
    manifest.write_text(manifest.read_text().replace('ttl = "7d"', f'ttl = "7d"\nfixed_in = ["{branch}"]'))
    registry = copy_registry(mit_registry, tmp_path / "registry")
    build(registry, src)

    e = start_exporter(_table(veth, version=f'"{base}"', ttl='"3s"'), registry=registry)
    st = _state(e)
    assert st["state"] == "enforce" and veth.xdp_attached(), st
    assert veth.send({veth.DENIED_SRC: 2}) == {veth.DENIED_SRC: 0}
    expiry = e.metrics().value("bpfleet_mitigation_expiry_timestamp_seconds", mitigation="xdp_denylist")
    assert abs(expiry - st["expires_at"]) < 1e-3

    # TTL: it unloads itself, traffic flows again
    deadline_poll(lambda: _state(e)["state"] == "expired", 8, interval=0.2, what="TTL expiry")
    assert not veth.xdp_attached()
    assert veth.send({veth.DENIED_SRC: 2}) == {veth.DENIED_SRC: 2}
    m = e.metrics()
    assert m.value("bpfleet_mitigation_state", mitigation="xdp_denylist", state="expired") == 1
    assert m.value("bpfleet_mitigation_state", mitigation="xdp_denylist", state="enforce") == 0
    assert f"mitigation xdp_denylist@{base} expired" in e.stderr_path.read_text()

    # an absolute expiry in the past: never loaded
    e.write_config({}, _table(veth, version=f'"{base}"', expires="2020-01-01T00:00:00Z"))
    code, reply = e.admin("POST", "/reload")
    assert code == 200, reply
    st = _state(e)
    assert st["state"] == "expired" and "2020-01-01T00:00:00Z" in st["reason"] and not veth.xdp_attached()
    assert e.program("xdp_denylist") is None

    # a kernel that has the fix: retired, not loaded, and it says why
    e.write_config({}, _table(veth, version=f'"{fixed}"'))
    code, reply = e.admin("POST", "/reload")
    assert code == 200, reply
    st = _state(e)
    assert st["state"] == "retired" and st["version"] == fixed, st
    assert f"kernel {release} has the fix (fixed in {branch})" == st["reason"]
    assert not veth.xdp_attached()
    assert e.metrics().value("bpfleet_mitigation_state", mitigation="xdp_denylist", state="retired") == 1


def test_a_kernel_without_bpf_lsm_reports_not_applicable(start_exporter):
    """This host's kernel refuses LSM programs: the mitigation is reported, not skipped. (In a
    VM with BPF-LSM the same config enforces: test_lsm_vm.py.)"""
    from exporter.kernel_features import unavailable
    why = unavailable(("lsm",))
    if why is None:
        pytest.skip("this kernel runs BPF-LSM programs; test_lsm_vm.py covers them")
    e = start_exporter('[mitigations.socket_family_deny]\nmode = "enforce"\n'
                       'lists = { deny_families = ["AF_ALG"] }\n')
    st = _state(e, "socket_family_deny")
    assert (st["state"], st["reason"], st["answers"]) == ("not_applicable", why, ["CVE-2026-31431"])
    assert e.program("socket_family_deny") is None
    m = e.metrics()
    assert m.value("bpfleet_mitigation_state", mitigation="socket_family_deny", state="not_applicable") == 1
    assert f"mitigation socket_family_deny@{builtin_version('socket_family_deny')}: not_applicable" in e.stderr_path.read_text()
    # and the admin API says why it cannot switch it
    code, reply = e.admin("PUT", "/mitigations/socket_family_deny/mode", {"mode": "monitor"})
    assert code == 409 and "not_applicable" in reply["error"], reply
