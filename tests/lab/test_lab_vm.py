"""A real lab VM: Debian bookworm's 6.1 kernel under QEMU TCG, next to a netns host.

The image is built by a session fixture if the cache lacks it (a minute or more on a fresh
machine); a build or boot failure fails these tests with the reason, it never skips them."""
from __future__ import annotations

import time
import urllib.request

import pytest

from labkit import REPORT, TEST_LAB, ansible_ping, leftovers, ssh, timed_up

pytestmark = pytest.mark.vm
STATE_DIR, PREFIX = TEST_LAB["BPFLEET_LAB_DIR"], TEST_LAB["BPFLEET_LAB_PREFIX"]


@pytest.fixture(scope="session")
def vm_image(lab_cli):
    from orchestrator.lab import LabConfig, LabError
    from orchestrator.lab.image import cached_image, ensure_image
    cfg = LabConfig.from_env()
    was_cached = cached_image(cfg.cache_dir) is not None
    t = time.monotonic()
    try:
        img = ensure_image(cfg.cache_dir, say=lambda m: None)
    except LabError as e:
        pytest.fail(f"VM image build failed: {e}")
    REPORT.append(f"VM image {img.key} (kernel {img.kernel_release}): "
                  + ("cached" if was_cached else f"built in {time.monotonic() - t:.0f} s"))
    return img


@pytest.fixture(scope="module")
def lab(lab_cli, vm_image):
    status, seconds = timed_up(lab_cli, "3", "--vms", "2", "--kernels", "bookworm,backports")
    REPORT.append(f"lab up 3 --vms 2 --kernels bookworm,backports (image cached, boot to SSH): "
                  f"{seconds:.1f} s")
    yield status
    lab_cli("down")


def _vm(lab, index: int = 1) -> dict:
    (vm,) = [h for h in lab["hosts"] if h["name"] == f"{PREFIX}-vm{index}"]
    return vm


def test_vm_runs_debian_6_1_with_btf_and_bpf_lsm(lab):
    vm = _vm(lab)
    assert (vm["name"], vm["address"], vm["alive"]) == (f"{PREFIX}-vm1", "127.0.0.1", True)
    assert ssh(vm, "uname -r").startswith("6.1.")
    assert ssh(vm, "hostname; cat /etc/bpfleet/lab-host").split() == [vm["name"]] * 2
    assert ssh(vm, "test -s /sys/kernel/btf/vmlinux && echo btf").strip() == "btf"
    assert "bpf" in ssh(vm, "cat /sys/kernel/security/lsm").split(",")
    assert ssh(vm, "stat -f -c %T /sys/fs/bpf").strip() == "bpf_fs"
    assert "program_type lsm is available" in ssh(vm, "bpftool feature probe kernel")


def test_second_vm_boots_the_backports_kernel_from_the_same_image(lab):
    vm = _vm(lab, 2)
    release = ssh(vm, "uname -r").strip()
    assert release.startswith("6.") and not release.startswith("6.1.") and vm["kernel"] == release
    trees = ssh(vm, "ls /lib/modules").split()
    assert release in trees and any(t.startswith("6.1.") for t in trees), trees
    assert ssh(vm, f"test -d /lib/modules/{release}/build/include && echo headers").strip() == "headers"
    assert ssh(vm, "modprobe -n nf_tables && echo modprobe-ok").strip() == "modprobe-ok"
    assert "bpf" in ssh(vm, "cat /sys/kernel/security/lsm").split(",")


def test_ansible_ping_vm_and_netns_host(lab):
    t = time.monotonic()
    assert ansible_ping(lab["inventory"]) == {h["name"]: "SUCCESS" for h in lab["hosts"]}
    REPORT.append(f"ansible ping, 1 netns host + 2 VMs: {time.monotonic() - t:.1f} s")


def test_vm_exporter_url_is_forwarded(lab):
    vm = _vm(lab)
    ssh(vm, "cd /run/bpfleet; echo from-$(hostname) > metrics; "
            "setsid python3 -m http.server 9436 >/dev/null 2>&1 </dev/null &")
    deadline = time.monotonic() + 60          # Python starts slowly under TCG
    while True:
        try:
            with urllib.request.urlopen(vm["exporter_url"] + "/metrics", timeout=10) as r:
                assert r.read().decode().strip() == f"from-{vm['name']}"
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_zz_down_stops_the_vm(lab, lab_cli):
    assert any("qemu-system" in p for p in leftovers(STATE_DIR, PREFIX).get("processes", []))
    lab_cli("down")
    assert leftovers(STATE_DIR, PREFIX) == {}
