"""The ansible-runner boundary against real Ansible: local host, an unreachable host (a closed
loopback port), a host missing from the inventory, and a cancelled run."""
from __future__ import annotations

import socket

import pytest

from orchestrator.ansible.runner import Timeouts, run_playbook


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # closed once we return: nothing listens there


@pytest.fixture
def inventory(tmp_path):
    inv = tmp_path / "inventory.ini"
    inv.write_text("here ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
                   f"gone ansible_host=127.0.0.1 ansible_port={closed_port()} ansible_user=root\n")
    return inv


def test_report_unreachable_and_missing_hosts(tmp_path, inventory):
    events = []
    r = run_playbook("facts.yml", str(inventory), ["here", "gone", "missing"], {}, "t-facts",
                     str(tmp_path / "pd"), on_event=events.append, timeouts=Timeouts(job=120, task=60, connect=5))
    assert r.hosts["here"].ok and r.hosts["here"].report["btf"] is True
    assert r.hosts["here"].report["release"]
    assert r.hosts["gone"].unreachable and not r.hosts["gone"].ok
    assert not r.hosts["missing"].ok and "report" in r.hosts["missing"].message
    assert r.ok_hosts == ["here"] and set(r.failed_hosts) == {"gone", "missing"}
    assert any(e.get("event") == "playbook_on_task_start" for e in events)
    assert (tmp_path / "pd" / "artifacts" / "t-facts" / "job_events").is_dir()  # the audit trail


def test_cancel_stops_the_run(tmp_path, inventory):
    slow = tmp_path / "slow.yml"
    slow.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.command: sleep 60\n"
                    "    - name: bpfleet report\n      ansible.builtin.debug: {msg: done}\n")
    started = []

    def cancel() -> bool:   # cancel once the sleep is running
        return bool(started)

    def on_event(e):
        if e.get("event") == "playbook_on_task_start":
            started.append(e)

    r = run_playbook(str(slow), str(inventory), ["here"], {}, "t-cancel", str(tmp_path / "pd"),
                     on_event=on_event, cancel=cancel, timeouts=Timeouts(job=120, task=90, connect=5))
    assert r.status == "canceled"
    assert not r.hosts["here"].ok and "canceled" in r.hosts["here"].message
