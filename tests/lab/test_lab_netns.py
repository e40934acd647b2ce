"""A real lab of network-namespace hosts: `bpfleet lab up 3`, then SSH, per-host filesystems
and bpffs, a real Ansible ping, an exporter-URL round trip, extension, and `lab down` leaving
nothing. Runs in file order; the fixture's teardown takes the lab down whatever happened."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from labkit import REPORT, TEST_LAB, ansible_ping, leftovers, ssh, timed_up

STATE_DIR, PREFIX = TEST_LAB["BPFLEET_LAB_DIR"], TEST_LAB["BPFLEET_LAB_PREFIX"]


@pytest.fixture(scope="module")
def lab(lab_cli):
    status, seconds = timed_up(lab_cli, "3")
    REPORT.append(f"lab up 3 (netns): {seconds:.1f} s")
    yield status
    lab_cli("down")


def test_up_reports_three_netns_hosts(lab):
    assert lab["up"] and Path(lab["inventory"]).is_file()
    assert [(h["name"], h["kind"], h["address"], h["alive"]) for h in lab["hosts"]] == [
        (f"{PREFIX}-ns{i}", "netns", f"10.213.200.{10 + i}", True) for i in (1, 2, 3)]


def test_ssh_each_host_is_its_own(lab):
    for h in lab["hosts"]:
        ssh(h, f"echo {h['name']} > /etc/bpfleet/marker")
    for h in lab["hosts"]:
        assert ssh(h, "hostname").strip() == h["name"]
        assert ssh(h, "cat /etc/bpfleet/marker /etc/bpfleet/lab-host").split() == [h["name"]] * 2
        assert Path(STATE_DIR, "hosts", h["name"], "root/etc/bpfleet/marker").read_text().strip() \
            == h["name"]
        assert h["address"] in ssh(h, "ip -4 -br addr show dev eth0")
    assert not Path("/etc/bpfleet/marker").exists(), "a host's /etc/bpfleet leaked to this machine"


def test_bpffs_is_per_host(lab):
    a, b = lab["hosts"][:2]
    for h in (a, b):
        assert ssh(h, "stat -f -c %T /sys/fs/bpf").strip() == "bpf_fs"
    ssh(a, "mkdir /sys/fs/bpf/labtest-dir")
    if shutil.which("bpftool"):   # a real pin too: a map that lives only in a's bpffs
        ssh(a, "bpftool map create /sys/fs/bpf/labtest-map type array key 4 value 4 "
               "entries 1 name labtest_map")
    seen_a = ssh(a, "ls /sys/fs/bpf").split()
    assert "labtest-dir" in seen_a
    assert "labtest-dir" not in ssh(b, "ls /sys/fs/bpf").split()
    assert not any(p.name.startswith("labtest-") for p in Path("/sys/fs/bpf").iterdir())
    if shutil.which("bpftool"):
        assert "labtest-map" in seen_a
        assert "labtest-map" not in ssh(b, "ls /sys/fs/bpf").split()


def test_ansible_ping_all(lab):
    t = time.monotonic()
    assert ansible_ping(lab["inventory"]) == {h["name"]: "SUCCESS" for h in lab["hosts"]}
    REPORT.append(f"ansible ping, 3 netns hosts: {time.monotonic() - t:.1f} s")


def test_exporter_url_reaches_the_host(lab):
    """Whatever listens on :9436 inside a host answers at its bpfleet_exporter_url."""
    h = lab["hosts"][1]
    ssh(h, "cd /run/bpfleet; echo from-$(hostname) > metrics; "
           "setsid python3 -m http.server 9436 >/dev/null 2>&1 </dev/null &")
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(h["exporter_url"] + "/metrics", timeout=2) as r:
                assert r.read().decode().strip() == f"from-{h['name']}"
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_up_again_keeps_extends_and_refuses_to_shrink(lab, lab_cli):
    pids = {h["name"]: h["pid"] for h in lab["hosts"]}
    out = lab_cli("up", "3").stdout
    assert out.count("already up") == 3
    lab_cli("up", "4")
    st = lab_cli("status", "--json").stdout
    hosts = {h["name"]: h for h in json.loads(st)["hosts"]}
    assert len(hosts) == 4 and all(h["alive"] for h in hosts.values())
    assert {n: hosts[n]["pid"] for n in pids} == pids, "running hosts were restarted"
    p = lab_cli("up", "2", check=False)
    assert p.returncode == 1 and "shrinking is not supported" in p.stderr


def test_zz_down_leaves_nothing(lab, lab_cli):
    assert leftovers(STATE_DIR, PREFIX), "the checker must see the running lab"
    t = time.monotonic()
    lab_cli("down")
    REPORT.append(f"lab down (4 netns hosts): {time.monotonic() - t:.1f} s")
    assert leftovers(STATE_DIR, PREFIX) == {}
    assert subprocess.run(["ip", "link", "show", "dev", f"{PREFIX}-br0"],
                          capture_output=True).returncode != 0
    assert lab_cli("status", check=False).returncode == 3
    assert "nothing was running" in lab_cli("down").stdout
