"""Every PromQL expression of every panel of every committed dashboard, evaluated by a real
Prometheus server scraping a real exporter that runs all the built-in programs, returns data.

Set-up (module fixture `stack`): build the built-in programs and mitigations, create a scratch
veth pair into a netns and a scratch cgroup v2 (tests/mitkit.py), start `bpfleet exporter` with
every built-in program (syscalls with its by_process knob on, so that syscalls_by_process_total
exists) and every mitigation in monitor mode: xdp_denylist on the veth's host end denying the
peer's DENIED_PREFIX and DENIED_PREFIX6, cgroup_deny on the scratch cgroup denying /dev/zero and
ip_forward writes. The exporter gets a free port, its own pin root and admin socket
(tests/integration/harness.py). Start `prometheus` on a free port scraping it every second, and
drive a workload in a thread for the whole test: getppid, O_DIRECT reads and writes, loopback TCP
connects, execs of /bin/true, short sleeps, an OOM kill in a tiny memory cgroup every few seconds
(so that oomkill's BPF program runs and its cost per event is defined), and every
MITIGATION_EVERY seconds UDP from a denied and an allowed source (IPv4 and IPv6) over the veth,
and a /dev/zero read and an ip_forward write (in a throwaway netns) from inside the scratch
cgroup, as tests/mitigations does. Then wait until Prometheus holds at least MIN_SCRAPES samples
of `up` for the exporter and has seen both mitigations' would_block decisions.

The queries are evaluated as tests/dashboards/dashkit.py says (Grafana's substitutions). Panels
that legitimately have no data on a test machine are listed in MAY_BE_EMPTY with the reason.
The dashboards of bcc-source and BPF-LSM programs (dashkit.needs_vm: this host has no kernel
headers and refuses lsm programs) are evaluated in a lab VM by test_dashboards_vm.py.

Prometheus and the exporter are stopped at the end, also on failure; the exporter's stop checks
that its pin root is gone and every BPF program and map it held is freed.
"""
from __future__ import annotations

import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from dashkit import HOST_DASHBOARDS, RATE_WINDOW, check_panels, check_variables, \
    instant_or_none, wait_increase, wait_scraped
from harness import live_skip_reason
from mitkit import DENIED_DEVICE, DENIED_SYSCTL, READ_ZERO, WRITE_SYSCTL, ScratchCgroup, VethPair
from prometheus_server import Prometheus

OOM_EVERY = 3.0                 # seconds between OOM kills in the test's memory cgroup
MITIGATION_EVERY = 1.0          # seconds between rounds of traffic the mitigations see
MITIGATION_COUNTERS = ('xdp_denylist_decisions_total{action="would_block"}',
                       "xdp_denylist_ipv4_prefix_packets_total", "xdp_denylist_ipv6_prefix_packets_total",
                       'cgroup_deny_decisions_total{action="would_block"}', "cgroup_deny_device_hits_total",
                       "cgroup_deny_sysctl_hits_total")
HOST_MITIGATIONS = ("xdp_denylist", "cgroup_deny")   # the BPF-LSM ones: test_dashboards_vm.py
SCRAPES_TIMEOUT = 45.0



# (dashboard file, panel title) -> why it may have no data on a test machine. Filled at run time
# only if the machine gives no way to cause the event.
MAY_BE_EMPTY: dict[tuple[str, str], str] = {}


# ------------------------------------------------------------------------------------------
# Workload
# ------------------------------------------------------------------------------------------

def memory_cgroup_dir() -> Path | None:
    """A fresh cgroup (v1 memory controller, or v2 with memory enabled) below ours, or None."""
    name = f"bpfleet-dash-oom-{os.getpid()}"
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if base.is_dir():
                d = base / name
                try:
                    d.mkdir(exist_ok=True)
                    (d / "memory.limit_in_bytes").write_text(str(32 << 20))
                    return d
                except OSError:
                    _rmdir(d)
                    return None
    for line in lines:
        if line.startswith("0::"):
            base = Path("/sys/fs/cgroup") / line[3:].lstrip("/")
            try:
                if "memory" not in (base / "cgroup.subtree_control").read_text().split():
                    return None
                d = base / name
                d.mkdir(exist_ok=True)
                (d / "memory.max").write_text(str(32 << 20))
                if (d / "memory.swap.max").exists():
                    (d / "memory.swap.max").write_text("0")
                return d
            except OSError:
                return None
    return None


def _rmdir(d: Path) -> None:
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)          # the killed task may take a moment to leave


OOM_CHILD = "b = bytearray(256 << 20); b[::4096] = b'x' * (len(b) // 4096)"   # touch 256 MiB


class Workload(threading.Thread):
    """Exercise every built-in program until stopped; remember the first error."""

    def __init__(self, io_dir: str, oom_cgroup: Path | None, veth: VethPair, deny_cgroup: ScratchCgroup):
        super().__init__(daemon=True, name="dashboard-workload")
        self.stop_event = threading.Event()
        self.io_path = os.path.join(io_dir, "data")
        self.oom_cgroup = oom_cgroup
        self.veth, self.deny_cgroup = veth, deny_cgroup
        self.error: BaseException | None = None
        self.rounds = self.oom_kills = self.mitigation_rounds = 0

    def run(self) -> None:
        try:
            srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            srv.bind(("127.0.0.1", 0))
            srv.listen(16)
            buf = mmap.mmap(-1, 1 << 20)           # page-aligned, as O_DIRECT needs
            buf.write(os.urandom(1 << 20))
            last_oom = last_mitigation = 0.0
            try:
                while not self.stop_event.is_set():
                    self.round(srv, buf)
                    if self.oom_cgroup is not None and time.monotonic() - last_oom >= OOM_EVERY:
                        last_oom = time.monotonic()
                        self.oom_kill()
                    if time.monotonic() - last_mitigation >= MITIGATION_EVERY:
                        last_mitigation = time.monotonic()
                        self.mitigation_traffic()
                    self.rounds += 1
                    self.stop_event.wait(0.05)
            finally:
                srv.close()
                buf.close()
        except BaseException as e:                 # reported by the test
            self.error = e

    def round(self, srv: socket.socket, buf: mmap.mmap) -> None:
        for _ in range(2000):
            os.getppid()
        fd = os.open(self.io_path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o600)
        try:
            for i in range(4):
                os.pwrite(fd, buf, i << 20)
            os.fsync(fd)
            for i in range(4):
                os.preadv(fd, [buf], i << 20)
        finally:
            os.close(fd)
        for _ in range(3):
            c = socket.create_connection(srv.getsockname(), timeout=5)
            a, _ = srv.accept()
            a.close()
            c.close()
        for _ in range(2):
            subprocess.run(["/bin/true"], check=True)
        for _ in range(10):
            time.sleep(0.0005)

    def oom_kill(self) -> None:
        """A child that joins the small memory cgroup and allocates past its limit: the kernel's
        memcg OOM killer kills it (mark_victim runs). Nothing outside the cgroup is touched."""
        procs = "cgroup.procs"
        cmd = f'echo $$ > {self.oom_cgroup / procs} && exec "$0" -c "$1"'
        r = subprocess.run(["sh", "-c", cmd, sys.executable, OOM_CHILD], capture_output=True, timeout=30)
        if r.returncode == -signal.SIGKILL or r.returncode == 128 + signal.SIGKILL:
            self.oom_kills += 1

    def mitigation_traffic(self) -> None:
        """What the monitor-mode mitigations count as would_block, and let through."""
        v = self.veth
        sent = {v.DENIED_SRC: 3, v.ALLOWED_SRC: 1, v.DENIED_SRC6: 2, v.ALLOWED_SRC6: 1}
        got = v.send(sent)
        assert got == sent, f"xdp_denylist is in monitor mode, yet over the veth {sent} arrived as {got}"
        for cmd in (READ_ZERO, WRITE_SYSCTL):
            r = self.deny_cgroup.run(*cmd)
            assert r.returncode == 0, f"cgroup_deny is in monitor mode, yet {cmd} failed: {r.stderr}"
        self.mitigation_rounds += 1

    def stop(self) -> None:
        self.stop_event.set()
        self.join(60)


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------

def mitigations_config(veth: VethPair, cgroup: ScratchCgroup) -> str:
    """The mitigations this host can run, in monitor mode (the BPF-LSM ones run in the VM)."""
    return (f'[mitigations.xdp_denylist]\nmode = "monitor"\n'
            f'lists = {{ deny_v4 = ["{veth.DENIED_PREFIX}"], deny_v6 = ["{veth.DENIED_PREFIX6}"] }}\n'
            f'attach = {{ interfaces = ["{veth.host}"] }}\n'
            f'[mitigations.cgroup_deny]\nmode = "monitor"\n'
            f'lists = {{ deny_devices = ["{DENIED_DEVICE}"], deny_sysctls = ["{DENIED_SYSCTL}"] }}\n'
            f'attach = {{ cgroup = "{cgroup.path}" }}\n')


def mitigation_states(exporter) -> dict[str, dict]:
    return {m["name"]: m for m in exporter.status()["mitigations"]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    reason = live_skip_reason("prometheus")
    if reason:
        pytest.skip(reason)
    from harness import BUILTINS, LOADABLE, PROGRAMS_DIR, TRACKER, Exporter, build
    TRACKER.start()
    tmp = tmp_path_factory.mktemp("dash-e2e")
    t0 = time.monotonic()
    registry = tmp / "registry"
    build(registry, *(PROGRAMS_DIR / n for n in BUILTINS + list(HOST_MITIGATIONS)))
    programs = {n: {} for n in BUILTINS}
    programs["syscalls"] = {"knobs": {"by_process": True}}
    prom = workload = cgroup = exporter = None
    veth = VethPair(tag="d", block=224)
    deny_cgroup = ScratchCgroup()
    io_dir = tempfile.mkdtemp(prefix="bpfleet-dash-io-", dir="/var/tmp")   # on a block device
    failed = False
    try:
        veth.up()
        deny_cgroup.__enter__()
        exporter = Exporter(tmp / "exporter", registry, programs,
                            extra_config=mitigations_config(veth, deny_cgroup))
        exporter.start()
        exporter.wait_attached(*LOADABLE)
        states = mitigation_states(exporter)
        for name in HOST_MITIGATIONS:
            assert states[name]["state"] == "monitor", (states[name], exporter.stderr_tail())
        cgroup = memory_cgroup_dir()
        if cgroup is None:
            MAY_BE_EMPTY[("bpfleet-oomkill.json", "Kernel time per event")] = (
                "no memory cgroup to cause an OOM kill in: mark_victim never runs, so it has no cost "
                "per event")
        workload = Workload(io_dir, cgroup, veth, deny_cgroup)
        workload.start()
        prom = Prometheus(tmp / "prometheus", [exporter.listen]).start()
        yield {"exporter": exporter, "prometheus": prom, "workload": workload, "t0": t0}
    except BaseException:
        failed = True
        raise
    finally:
        errors = []
        if workload is not None:
            workload.stop()
        if prom is not None:
            prom.stop()
            if prom.proc.poll() is None:
                errors.append("prometheus did not exit")
        if exporter is not None:
            try:
                exporter.stop()
            except AssertionError as e:
                exporter.kill()
                errors.append(str(e))
        veth.down()
        if deny_cgroup.path.exists():
            try:
                deny_cgroup.__exit__(None, None, None)
            except AssertionError as e:
                errors.append(str(e))
        if cgroup is not None:
            _rmdir(cgroup)
        for f in Path(io_dir).iterdir():
            f.unlink()
        os.rmdir(io_dir)
        if errors and not failed:
            pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture(scope="module")
def scraped(stack):
    """Prometheus has at least MIN_SCRAPES samples of the exporter, and every program's BPF
    programs have run in the last rate window (the workload is running)."""
    from harness import deadline_poll
    prom, exporter = stack["prometheus"], stack["exporter"]

    def healthy():
        if stack["workload"].error:
            raise AssertionError(f"workload failed: {stack['workload'].error!r}")
    try:
        wait_scraped(prom, exporter.listen, SCRAPES_TIMEOUT, healthy)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{exporter.stderr_tail()}") from None
    if stack["workload"].oom_cgroup is not None:
        # the OOM kills happen every OOM_EVERY seconds: wait for one inside the rate window
        mark = (f'increase(bpfleet_program_run_count_total{{program="oomkill", bpf_program="mark_victim"}}'
                f'[{RATE_WINDOW}])')
        deadline_poll(lambda: (instant_or_none(prom, mark) or 0) > 0, 20, interval=0.2,
                      what="an OOM kill seen by Prometheus")
    # the mitigations' counters move (a per-prefix/per-entry counter exists, at 0, as soon as
    # its list entry does: wait for real hits)
    for counter in MITIGATION_COUNTERS:
        wait_increase(prom, counter, 20)
    stack["ready_after"] = time.monotonic() - stack["t0"]
    return stack


# ------------------------------------------------------------------------------------------
# The dashboards' queries (dashkit.py); the bcc-source and BPF-LSM ones: test_dashboards_vm.py
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", HOST_DASHBOARDS, ids=[p.stem for p in HOST_DASHBOARDS])
def test_every_panel_query_returns_data(scraped, path):
    check_panels(scraped["prometheus"], path, scraped["exporter"].listen, MAY_BE_EMPTY)


@pytest.mark.parametrize("path", HOST_DASHBOARDS, ids=[p.stem for p in HOST_DASHBOARDS])
def test_every_template_variable_has_values(scraped, path):
    check_variables(scraped["prometheus"], path, scraped["exporter"].listen)


def test_workload_and_timing(scraped):
    w = scraped["workload"]
    assert w.error is None, repr(w.error)
    assert w.rounds > 0
    if w.oom_cgroup is not None:
        assert w.oom_kills > 0, "the OOM child was never killed"
    assert w.mitigation_rounds > 0
    print(f"build, exporter, prometheus and scrapes ready after {scraped['ready_after']:.1f} s")
