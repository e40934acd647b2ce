"""The dashboards this host cannot feed, evaluated where their programs run: a lab VM (Debian
bookworm's 6.1 kernel, with its headers, bcc and BPF-LSM). disksnoop and tcpv4connect are
bcc-source programs (compiled against kernel headers at load); socket_family_deny and
file_open_deny are BPF-LSM mitigations. dashkit.needs_vm picks them from their manifests.

Set-up (module fixture `vm_stack`, one VM boot of this module's own lab, BPFLEET_LAB_* below or
from the environment): build the four programs here, copy the checkout and registry into the
guest (tests/mitigations/vmkit.py), start the exporter there listening on 0.0.0.0:9436 (QEMU
forwards 127.0.0.1:<port_base + 101> here to it) with both programs and both mitigations in
monitor mode, start GUEST_WORKLOAD in the guest (per round: O_DIRECT write + read on the guest's
disk, a TCP v4 connect to a listener of its own, socket(AF_ALG), open of the deny-listed SECRET),
and a real `prometheus` here scraping the forwarded port every SCRAPE_INTERVAL. Then every panel query
and template variable of the four dashboards is evaluated as for the host's (dashkit.py), and
the counters of what only the workload does must equal its rounds exactly.

~3-4 min under TCG: the boot, bcc compiling two programs (~75 s on an idle machine), scrapes.
The lab is taken down at the end, also on failure; no VM means failure, never a skip.
"""
from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest
from dashkit import VM_DASHBOARDS, check_panels, check_variables, instant_or_none, wait_increase, \
    wait_scraped
from harness import PROGRAMS_DIR, build, deadline_poll
from prometheus_server import Prometheus
from vmkit import ADMIN_SOCKET, GUEST_DIR, Guest, _quote, checkout_tar, start_exporter, stop_exporter

LAB = {k: os.environ.get(k) or v for k, v in {
    "BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-dash", "BPFLEET_LAB_PREFIX": "bpfldsh",
    "BPFLEET_LAB_SUBNET": "10.213.250.0/24", "BPFLEET_LAB_PORT_BASE": "43500"}.items()}
VM_MEMORY_MB = 1024        # clang inside bcc needs more than the lab's default 512
PROGRAMS = ("disksnoop", "tcpv4connect")
MITIGATIONS = ("socket_family_deny", "file_open_deny")
SECRET = "/etc/bpfldsh-secret"
PIN_ROOT = "/sys/fs/bpf/bpfldsh"
ATTACH_TIMEOUT = 1200      # bcc compiles two programs under TCG: ~75 s idle, 11 min on a loaded machine
SCRAPE_INTERVAL = "3s"     # and timeout: a scrape of the TCG guest through QEMU's forward can take > 1 s
SCRAPES_TIMEOUT = 90
CONFIG = (f'listen = "0.0.0.0:9436"\npin_root = "{PIN_ROOT}"\nadmin_socket = "{ADMIN_SOCKET}"\n'
          + "".join(f"[programs.{n}]\n" for n in PROGRAMS)
          + '[mitigations.socket_family_deny]\nmode = "monitor"\nlists = { deny_families = ["AF_ALG"] }\n'
          + f'[mitigations.file_open_deny]\nmode = "monitor"\nlists = {{ deny_paths = ["{SECRET}"] }}\n')
# Runs in the guest until killed. While PAUSE exists it idles and reports its rounds in PAUSED:
# the exact-count test reads the counters of a workload standing still.
GUEST_WORKLOAD = r'''
import mmap, os, socket, sys, time
secret, state = sys.argv[1], sys.argv[2]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(16)
open(f"{state}/port", "w").write(str(srv.getsockname()[1]))
buf = mmap.mmap(-1, 1 << 16); buf.write(os.urandom(1 << 16))    # page-aligned for O_DIRECT
rounds = 0
while True:
    if os.path.exists(f"{state}/pause"):
        open(f"{state}/paused.tmp", "w").write(str(rounds)); os.replace(f"{state}/paused.tmp", f"{state}/paused")
        time.sleep(0.2); continue
    fd = os.open(f"{state}/io", os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
    os.pwrite(fd, buf, 0); os.fsync(fd); os.preadv(fd, [buf], 0); os.close(fd)
    c = socket.create_connection(srv.getsockname()); srv.accept()[0].close(); c.close()
    socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0).close()   # monitor mode: allowed
    open(secret).close()
    rounds += 1
    time.sleep(0.3)
'''
STATE = "/var/tmp/bpfldsh"          # on the guest's disk (ext4 on virtio), for O_DIRECT


def lab_config():
    from orchestrator.lab import LabConfig
    return LabConfig(state_dir=LAB["BPFLEET_LAB_DIR"], prefix=LAB["BPFLEET_LAB_PREFIX"],
                     subnet=LAB["BPFLEET_LAB_SUBNET"], port_base=int(LAB["BPFLEET_LAB_PORT_BASE"]),
                     cache_dir=os.environ.get("BPFLEET_LAB_CACHE") or "/var/cache/bpfleet-lab",
                     vm_memory_mb=VM_MEMORY_MB, vm_kernels=("bookworm",))   # 6.12: bcc 0.26 too old


def http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def wait_attached(url: str) -> dict:
    """/status once every program and mitigation left its start-up state; the states asserted."""
    def settled():
        try:
            st = http_json(f"{url}/status")
        except OSError:
            return None
        states = {p["name"]: p["state"] for p in st["programs"]}
        return st if set(PROGRAMS) <= states.keys() and "stopped" not in states.values() else None
    st = deadline_poll(settled, ATTACH_TIMEOUT, interval=3, what="the VM exporter's programs settled")
    got = {p["name"]: (p["state"], p.get("reason")) for p in st["programs"]}
    got.update({m["name"]: (m["state"], m["reason"]) for m in st["mitigations"]})
    want = {n: "attached" for n in PROGRAMS} | {n: "monitor" for n in MITIGATIONS}
    assert {n: got.get(n, ("missing",))[0] for n in want} == want, json.dumps(got, indent=1)
    return st


@pytest.fixture(scope="module")
def vm_stack(tmp_path_factory):
    from orchestrator.lab import lab as lablib
    if os.geteuid() != 0:
        pytest.fail("the VM dashboards need root to start a lab VM (this host has no kernel headers "
                    "and refuses BPF-LSM)")
    t0 = time.monotonic()
    seconds = {}
    tmp = tmp_path_factory.mktemp("dash-vm")
    build(tmp / "registry", *(PROGRAMS_DIR / n for n in PROGRAMS + MITIGATIONS))
    cfg, quiet = lab_config(), lambda m: None
    lablib.down(cfg, quiet)                        # a lab left over by an interrupted run
    prom = guest = None
    failed = False
    try:
        t = time.monotonic()
        lablib.up(cfg, 1, 1, quiet)
        (vm,) = [h for h in lablib.status(cfg)["hosts"] if h["kind"] == "vm"]
        seconds["VM boot"] = time.monotonic() - t
        guest = Guest(vm)
        guest.put_tar(checkout_tar(tmp / "registry"), GUEST_DIR)
        guest.sh(f"echo s3cret > {SECRET}")       # before the exporter: this open is not counted
        t = time.monotonic()
        start_exporter(guest, CONFIG, timeout=ATTACH_TIMEOUT)
        wait_attached(vm["exporter_url"])
        seconds["exporter start (bcc compiles)"] = time.monotonic() - t
        guest.sh(f"mkdir -p {STATE} && cd {STATE} && (setsid python3 -c {_quote(GUEST_WORKLOAD)} "
                 f"{SECRET} {STATE} > log 2>&1 < /dev/null & echo $! > pid)")
        prom = Prometheus(tmp / "prometheus", [vm["exporter_url"].removeprefix("http://")],
                          scrape_interval=SCRAPE_INTERVAL).start()
        stack = {"prometheus": prom, "guest": guest, "instance": vm["exporter_url"].removeprefix("http://"),
                 "seconds": seconds}
        t = time.monotonic()
        wait_scraped(prom, stack["instance"], SCRAPES_TIMEOUT, lambda: workload_alive(guest))
        for counter in ("disksnoop_latency_seconds_count", "tcpv4connect_connects_total",
                        "socket_family_deny_decisions_total", "file_open_deny_path_hits_total"):
            wait_increase(prom, counter, SCRAPES_TIMEOUT)
        seconds["scraped"] = time.monotonic() - t
        seconds["set-up"] = time.monotonic() - t0
        yield stack
    except BaseException:
        failed = True
        raise
    finally:
        log, pins = "", "0"
        try:
            if prom is not None:
                prom.stop()
            if guest is not None:
                guest.sh(f"kill $(cat {STATE}/pid)", check=False)
                log = stop_exporter(guest)
                pins = guest.sh(f"ls {PIN_ROOT} 2>/dev/null | wc -l", check=False).stdout.strip()
        finally:
            lablib.down(cfg, quiet)
        print(f"VM dashboards: {', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}; "
              f"total {time.monotonic() - t0:.0f} s")
        if not failed:
            assert "Traceback" not in log, log[-3000:]
            assert pins == "0", f"the VM exporter left {pins} pins in {PIN_ROOT}"


def workload_alive(guest: Guest) -> None:
    if guest.sh(f"kill -0 $(cat {STATE}/pid)", check=False).returncode != 0:
        raise AssertionError("the guest workload died:\n" + guest.sh(f"cat {STATE}/log", check=False).stdout)


def test_the_vm_evaluates_exactly_the_dashboards_this_host_cannot():
    """A new bcc-source or BPF-LSM program's dashboard needs its workload and config here."""
    assert sorted(p.stem.removeprefix("bpfleet-") for p in VM_DASHBOARDS) == sorted(PROGRAMS + MITIGATIONS)


@pytest.mark.vm
@pytest.mark.parametrize("path", VM_DASHBOARDS, ids=[p.stem for p in VM_DASHBOARDS])
def test_every_panel_query_returns_data_in_the_vm(vm_stack, path):
    check_panels(vm_stack["prometheus"], path, vm_stack["instance"])


@pytest.mark.vm
@pytest.mark.parametrize("path", VM_DASHBOARDS, ids=[p.stem for p in VM_DASHBOARDS])
def test_every_template_variable_has_values_in_the_vm(vm_stack, path):
    check_variables(vm_stack["prometheus"], path, vm_stack["instance"])


@pytest.mark.vm
def test_workload_counted_exactly_through_prometheus(vm_stack):
    """Pause the guest workload; what only it does was counted once per round, as Prometheus
    sees it (double counting or a lost label would show here). Then let it run on."""
    prom, guest = vm_stack["prometheus"], vm_stack["guest"]
    port = guest.sh(f"cat {STATE}/port").stdout.strip()
    guest.sh(f"rm -f {STATE}/paused && touch {STATE}/pause")
    try:
        rounds = int(deadline_poll(lambda: guest.sh(f"cat {STATE}/paused", check=False).stdout.strip(),
                                   60, interval=1, what="the guest workload paused"))
        exact = {f'tcpv4connect_connects_total{{daddr="127.0.0.1", dport="{port}"}}': rounds,
                 'socket_family_deny_decisions_total{action="would_block", family="AF_ALG"}': rounds,
                 'file_open_deny_decisions_total{action="would_block"}': rounds,
                 f'file_open_deny_path_hits_total{{path="{SECRET}"}}': rounds}
        for expr in exact:   # wait for a scrape after the pause (absent: not yet), then exact
            deadline_poll(lambda: (instant_or_none(prom, f"sum({expr})") or 0) >= rounds, 30,
                          interval=0.5, what=f"{expr} >= {rounds}")
        got = {expr: prom.value(f"sum({expr})") for expr in exact}
        assert got == exact
    finally:
        guest.sh(f"rm -f {STATE}/pause")
    print(f"VM dashboards: {vm_stack['seconds']}")
