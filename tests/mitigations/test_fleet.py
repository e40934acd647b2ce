"""`bpfleet mitigate` across a real lab fleet: 3 network-namespace hosts with exporters from
`bpfleet fleet install`, driven through Ansible. xdp_denylist denies host 1's address and
attaches to eth0 and to an interface host 3 does not have, so host 3 rejects it: it is reported
and the others are protected. apply (monitor) -> counts -> promote (shows them, then enforces)
-> host 1's connections dropped at host 2 -> host 2 made unreachable -> revoke reports it and
frees the others (--timeout 20 s bounds the dead host). Costs a lab and an install: ~1.5 min here,
10 under heavy load."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from harness import PROGRAMS_DIR, build
from vmkit import MIT_LAB, ROOT, lab

pytestmark = pytest.mark.lab


def bpfleet(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-m", "bpfleet.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, stdin=subprocess.DEVNULL,
                          env={**os.environ, **MIT_LAB, "PYTHONPATH": str(ROOT)})


def _json_lines(text: str) -> list[dict]:
    return [json.loads(l) for l in text.splitlines() if l.strip().startswith("{")]


def ping(src_ns: str, dst: str, n: int = 3) -> int:
    """TCP connects from host src_ns to dst's sshd (no ping binary here): how many succeeded."""
    script = ("import socket,sys\nok=0\nfor _ in range(%d):\n    s=socket.socket(); s.settimeout(1)\n"
              "    ok += s.connect_ex((sys.argv[1], 22)) == 0; s.close()\nprint(ok)" % n)
    r = subprocess.run(["ip", "netns", "exec", src_ns, sys.executable, "-c", script, dst],
                       capture_output=True, text=True, timeout=60)
    return int(r.stdout.strip() or 0)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mitfleet")
    registry, journal = tmp / "registry", tmp / "journal.db"
    build(registry, PROGRAMS_DIR / "xdp_denylist")
    lab("down")
    try:
        up = lab("up", "3", "--json")
        assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
        status = json.loads(up.stdout)
        t = time.monotonic()
        p = bpfleet("fleet", "install", "-i", status["inventory"], "--registry", str(registry),
                    "--journal", str(journal), "--json")
        assert p.returncode == 0, f"fleet install failed:\n{p.stdout}\n{p.stderr}"
        print(f"fleet install on 3 hosts: {time.monotonic() - t:.1f} s")
        yield {"inventory": status["inventory"], "registry": str(registry), "journal": str(journal),
               "hosts": {h["name"]: h for h in status["hosts"]}}
    finally:
        lab("down")


def test_apply_promote_revoke(fleet):
    names = sorted(fleet["hosts"])
    h1, h2, h3 = (fleet["hosts"][n] for n in names)
    common = ["-i", fleet["inventory"], "--registry", fleet["registry"], "--journal", fleet["journal"], "--json"]
    assert ping(h1["name"], h2["address"]) == 3
    for h in (h1, h2):   # a second interface, which host 3 lacks
        subprocess.run(["ip", "netns", "exec", h["name"], "ip", "link", "add", "mit0", "type", "veth",
                        "peer", "name", "mit1"], check=True)

    t = time.monotonic()
    p = bpfleet("mitigate", "apply", "xdp_denylist", "--mode", "monitor", "--list",
                f"deny_v4={h1['address']}/32", "--interface", "eth0", "--interface", "mit0", "--ttl", "1h",
                "--steps", "100%", "--bake", "1", *common)
    events = _json_lines(p.stdout)
    result = events[-1]
    assert p.returncode == 0 and result["result"] == "succeeded", f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    assert result["host_states"][h3["name"]] == "failed", result
    failed = [e for e in events if e.get("kind") == "host_failed"]
    assert [e["host"] for e in failed] == [h3["name"]] and "mit0" in failed[0]["error"], failed
    print(f"mitigate apply (3 hosts, canary + 1 wave, one rejects): {time.monotonic() - t:.1f} s")
    assert ping(h1["name"], h2["address"]) == 3 and ping(h1["name"], h3["address"]) == 3   # monitor: passes

    t = time.monotonic()
    p = bpfleet("mitigate", "promote", "xdp_denylist", "--yes", "--steps", "100%", "--bake", "1", *common)
    lines = _json_lines(p.stdout)
    shown = next(l for l in lines if l.get("kind") == "before promote")
    assert shown["totals"]["would_block"] >= 6 and shown["totals"]["monitor"] == 2, shown
    assert "mit0" in shown["totals"]["not_running"][h3["name"]], shown
    assert p.returncode == 0 and lines[-1]["result"] == "succeeded", f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    print(f"mitigate promote: {time.monotonic() - t:.1f} s")
    assert ping(h1["name"], h2["address"]) == 0                       # enforce: dropped
    assert ping(h1["name"], h3["address"]) == 3                       # host 3 rejected it
    assert ping(h3["name"], h2["address"]) == 3                       # others pass

    p = bpfleet("mitigate", "status", "xdp_denylist", *common[:-1], "--json")
    st = _json_lines(p.stdout)[-1]
    states = {r["host"]: r["state"] for r in st["hosts"]}
    assert states == {h1["name"]: "enforce", h2["name"]: "enforce", h3["name"]: "failed"}, st
    assert st["totals"]["blocked"] >= 3, st

    # host 2 unreachable (its link down): revoke frees the others at once and names it
    subprocess.run(["ip", "netns", "exec", h2["name"], "ip", "link", "set", "eth0", "down"], check=True)
    t = time.monotonic()
    p = bpfleet("mitigate", "revoke", "xdp_denylist", *common)
    res = _json_lines(p.stdout)[-1]
    print(f"mitigate revoke (3 hosts, one unreachable): {time.monotonic() - t:.1f} s")
    assert p.returncode == 1 and res["revoked"] == [h1["name"], h3["name"]], res
    assert list(res["unreachable"]) == [h2["name"]], res
    subprocess.run(["ip", "netns", "exec", h2["name"], "ip", "link", "set", "eth0", "up"], check=True)
    # host 2 never heard the revoke: it still drops host 1 (and says so) until it is reached again
    assert ping(h1["name"], h2["address"]) == 0
    p = bpfleet("mitigate", "revoke", "xdp_denylist", "-l", h2["name"], *common)
    assert p.returncode == 0, p.stdout
    assert ping(h1["name"], h2["address"]) == 3
