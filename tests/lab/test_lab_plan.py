"""The address plan and the inventory, without root: pure functions of the config."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labkit import VENV_BIN
from orchestrator.lab import LabConfig, LabError
from orchestrator.lab.plan import max_netns_hosts, plan_hosts, render_inventory, split_counts


def test_default_plan_addresses_names_ports():
    cfg = LabConfig()
    hosts = plan_hosts(cfg, 3, 2)
    assert [(h.name, h.kind, h.address, h.ssh_port, h.exporter_url) for h in hosts] == [
        ("bpfleet-ns1", "netns", "10.213.0.11", 22, "http://10.213.0.11:9436"),
        ("bpfleet-ns2", "netns", "10.213.0.12", 22, "http://10.213.0.12:9436"),
        ("bpfleet-ns3", "netns", "10.213.0.13", 22, "http://10.213.0.13:9436"),
        ("bpfleet-vm1", "vm", "127.0.0.1", 42201, "http://127.0.0.1:42301"),
        ("bpfleet-vm2", "vm", "127.0.0.1", 42202, "http://127.0.0.1:42302"),
    ]
    assert [(h.netns, h.veth) for h in hosts[:2]] == [("bpfleet-ns1", "bpfleet-v1"),
                                                      ("bpfleet-ns2", "bpfleet-v2")]
    assert cfg.bridge == "bpfleet-br0" and cfg.gateway == "10.213.0.1"


def test_plan_follows_config():
    cfg = LabConfig(prefix="t2", subnet="192.168.77.0/26", port_base=50000)
    (ns, vm) = plan_hosts(cfg, 1, 1)
    assert (ns.name, ns.address, ns.veth, cfg.bridge) == ("t2-ns1", "192.168.77.11", "t2-v1", "t2-br0")
    assert (vm.name, vm.ssh_port, vm.exporter_fwd_port) == ("t2-vm1", 50001, 50101)
    assert max_netns_hosts(cfg) == 64 - 2 - 10
    with pytest.raises(LabError, match="room for 52"):
        plan_hosts(cfg, 53, 0)


@pytest.mark.parametrize("total,vms,expect", [(3, 0, (3, 0)), (3, 1, (2, 1)), (2, 2, (0, 2))])
def test_split_counts(total, vms, expect):
    assert split_counts(total, vms) == expect


@pytest.mark.parametrize("total,vms,msg", [(0, 0, "at least one"), (2, 3, "between 0 and"),
                                           (2, -1, "between 0 and")])
def test_split_counts_rejects(total, vms, msg):
    with pytest.raises(LabError, match=msg):
        split_counts(total, vms)


def test_inventory_text():
    cfg = LabConfig()
    text = render_inventory(plan_hosts(cfg, 1, 1), Path("/k/id"), {"bpfleet-vm1": "6.1.0-50-amd64"})
    assert "[netns]\nbpfleet-ns1 ansible_host=10.213.0.11 ansible_port=22 bpfleet_lab_kind=netns " \
           "bpfleet_exporter_url=http://10.213.0.11:9436\n" in text
    assert "[vms]\nbpfleet-vm1 ansible_host=127.0.0.1 ansible_port=42201 bpfleet_lab_kind=vm " \
           "bpfleet_exporter_url=http://127.0.0.1:42301 bpfleet_lab_kernel=6.1.0-50-amd64 " \
           "ansible_ssh_timeout=60\n" in text
    assert "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'" in text


def test_inventory_as_ansible_reads_it(tmp_path):
    """ansible-inventory (ansible-core's own parser) sees the groups and variables we meant."""
    cfg = LabConfig()
    inv = tmp_path / "inventory.ini"
    inv.write_text(render_inventory(plan_hosts(cfg, 2, 1), Path("/k/id_ed25519")))
    p = subprocess.run([str(VENV_BIN / "ansible-inventory"), "-i", str(inv), "--list"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["netns"]["hosts"] == ["bpfleet-ns1", "bpfleet-ns2"]
    assert data["vms"]["hosts"] == ["bpfleet-vm1"]
    hv = data["_meta"]["hostvars"]
    want = {
        "ansible_host": "10.213.0.12", "ansible_port": 22, "ansible_user": "root",
        "ansible_ssh_private_key_file": "/k/id_ed25519",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "bpfleet_lab_kind": "netns", "bpfleet_exporter_url": "http://10.213.0.12:9436"}
    assert {k: hv["bpfleet-ns2"].get(k) for k in want} == want
    assert hv["bpfleet-vm1"]["ansible_port"] == 42201
    assert hv["bpfleet-vm1"]["bpfleet_exporter_url"] == "http://127.0.0.1:42301"
    assert hv["bpfleet-vm1"]["bpfleet_lab_kind"] == "vm"
