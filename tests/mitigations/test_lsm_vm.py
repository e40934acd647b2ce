"""The BPF-LSM mitigations for real, in a lab VM (Debian 6.1 booted with lsm=...,bpf): this
host's kernel refuses LSM programs. One VM boot, one exporter in it, both mitigations. When no
VM can be started the test fails with the reason. ~1-3 min under TCG (most of it the boot).

socket_family_deny: socket(AF_ALG) fails with EPERM for an executable not on the allow-list
and works for one on it; monitor mode only counts. file_open_deny: opening a deny-listed path
fails with EPERM except for an allow-listed executable."""
from __future__ import annotations

import json
import os
import time

import pytest

from harness import build, PROGRAMS_DIR
from vmkit import GUEST_DIR, Guest, _quote, checkout_tar, lab, start_exporter, stop_exporter

pytestmark = pytest.mark.vm
ALLOWED = "/usr/local/bin/bpflmit-allowed-python"   # a copy of python3: another executable path
SECRET = "/etc/bpflmit-secret"
AF_ALG = ("import socket\n"
          "try:\n"
          "    socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0).close(); print('created')\n"
          "except OSError as e:\n"
          "    print('errno', e.errno)\n")
OPEN = ("try:\n"
        f"    open({SECRET!r}).read(); print('opened')\n"
        "except OSError as e:\n"
        "    print('errno', e.errno)\n")
CONFIG = f'''listen = "127.0.0.1:9436"
pin_root = "/sys/fs/bpf/bpflmit"
admin_socket = "/run/bpflmit/admin.sock"

[mitigations.socket_family_deny]
mode = "monitor"
lists = {{ deny_families = ["AF_ALG"], allow_exe = ["{ALLOWED}"] }}

[mitigations.file_open_deny]
mode = "enforce"
lists = {{ deny_paths = ["{SECRET}"], allow_exe = ["{ALLOWED}"] }}
'''


@pytest.fixture(scope="module")
def guest(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the LSM tests need root to start a lab VM (this kernel refuses BPF-LSM)")
    registry = tmp_path_factory.mktemp("lsm-registry")
    build(registry, PROGRAMS_DIR / "socket_family_deny", PROGRAMS_DIR / "file_open_deny")
    lab("down")
    t = time.monotonic()
    up = lab("up", "1", "--vms", "1", "--json")
    if up.returncode != 0:
        lab("down")
        pytest.fail(f"no lab VM could be started, so the BPF-LSM mitigations were NOT tested:\n"
                    f"{up.stdout}\n{up.stderr}")
    try:
        (vm,) = [h for h in json.loads(up.stdout)["hosts"] if h["kind"] == "vm"]
        g = Guest(vm)
        print(f"lab VM up in {time.monotonic() - t:.1f} s")
        g.put_tar(checkout_tar(registry), GUEST_DIR)
        g.sh(f"cp /usr/bin/python3 {ALLOWED} && echo s3cret > {SECRET}")
        yield g
    finally:
        lab("down")


def _py(guest: Guest, exe: str, script: str) -> str:
    return guest.sh(f"{exe} -c {_quote(script)}").stdout.strip().splitlines()[-1]


def _value(metrics: str, name: str, **labels) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_lsm_mitigations_in_a_vm(guest):
    assert "bpf" in guest.sh("cat /sys/kernel/security/lsm").stdout.split(",")
    start_exporter(guest, CONFIG)
    try:
        code, st = guest.admin("GET", "/mitigations")
        states = {m["name"]: (m["state"], m["reason"]) for m in st["mitigations"]}
        assert states == {"socket_family_deny": ("monitor", None), "file_open_deny": ("enforce", None)}, st

        # monitor: AF_ALG works for everyone and is counted for the executable not on the list
        assert _py(guest, "python3", AF_ALG) == "created"
        assert _py(guest, ALLOWED, AF_ALG) == "created"
        # enforce (one map write, no reload): EPERM unless allow-listed
        code, reply = guest.admin("PUT", "/mitigations/socket_family_deny/mode", {"mode": "enforce"})
        assert code == 200, reply
        assert _py(guest, "python3", AF_ALG) == "errno 1"
        assert _py(guest, ALLOWED, AF_ALG) == "created"
        # other families are untouched
        assert _py(guest, "python3", "import socket; socket.socket(socket.AF_INET6).close(); print('ok')") == "ok"

        # file_open_deny: the secret is refused to python3, opened by the allow-listed copy
        assert _py(guest, "python3", OPEN) == "errno 1"
        assert _py(guest, ALLOWED, OPEN) == "opened"
        assert guest.sh(f"cat {SECRET}", check=False).returncode != 0
        # the allow-list is live: take the copy off it
        code, reply = guest.admin("PUT", "/mitigations/file_open_deny/lists/allow_exe", {"entries": []})
        assert code == 200 and reply["removed"] == 1, reply
        assert _py(guest, ALLOWED, OPEN) == "errno 1"

        metrics = guest.sh("python3 -c \"import urllib.request as u; "
                           "print(u.urlopen('http://127.0.0.1:9436/metrics').read().decode())\"").stdout
        assert _value(metrics, "socket_family_deny_decisions_total", action="would_block", family="AF_ALG") == 1
        assert _value(metrics, "socket_family_deny_decisions_total", action="blocked", family="AF_ALG") == 1
        assert _value(metrics, "file_open_deny_decisions_total", action="blocked") >= 3
        assert _value(metrics, "bpfleet_ringbuf_events_total", program="socket_family_deny") >= 2

        # revoke: the kill switch
        code, _ = guest.admin("DELETE", "/mitigations/socket_family_deny")
        assert code == 200
        assert _py(guest, "python3", AF_ALG) == "created"
    finally:
        log = stop_exporter(guest)
        print(log[-3000:])
    assert "Traceback" not in log, log
    assert guest.sh("ls /sys/fs/bpf/bpflmit 2>/dev/null | wc -l").stdout.strip() == "0"
