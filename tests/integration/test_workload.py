"""Drive known workloads and check every built-in program counts at least that much.

All built-in programs run in one exporter for the module. Each test scrapes, drives its
workload, then polls /metrics (with a deadline, no fixed sleeps) until the counters have grown
by at least the amount of work done. Lower bounds only: the whole machine is counted.
"""
from __future__ import annotations

import math
import mmap
import os
import socket
import subprocess
import tempfile
import time

import pytest
import tomli

from harness import LOADABLE, PROGRAMS_DIR, BUILTINS, Metrics, deadline_poll, disk_of

N_GETPPID = 5000
IO_CHUNK = 1 << 20          # 1 MiB per O_DIRECT call
IO_BYTES = 8 << 20          # 8 MiB written, then read back
M_CONNECTS = 20
K_EXECS = 20
N_SLEEPS = 50


# bcc-source programs without kernel headers are not_applicable (test_bcc_programs.py)
RUNNING = LOADABLE


@pytest.fixture(scope="module")
def exporter(module_exporters):
    e = module_exporters({name: {} for name in BUILTINS})
    e.wait_attached(*RUNNING)
    return e


def grown(exporter, check, what: str, timeout: float = 10.0) -> Metrics:
    """Poll /metrics until check(metrics) is true; on timeout fail with check's last message."""
    last = {}

    def once():
        m = exporter.metrics()
        ok, msg = check(m)
        last["msg"] = msg
        return m if ok else None
    try:
        return deadline_poll(once, timeout, interval=0.05, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: {last.get('msg')}") from None


def test_all_builtins_attached(exporter):
    m = exporter.metrics()
    for name in BUILTINS:
        assert m.value("bpfleet_program_attached", program=name) == (1 if name in RUNNING else 0), name
        assert m.value("bpfleet_program_load_errors_total", program=name) == 0, name
    st = {p["name"]: p for p in exporter.status()["programs"]}
    assert set(st) == set(BUILTINS)
    released = {n: tomli.loads((PROGRAMS_DIR / n / "manifest.toml").read_text())["version"] for n in RUNNING}
    assert all(st[n]["state"] == "attached" and st[n]["version"] == released[n] for n in RUNNING), st
    assert all(st[n]["state"] == "not_applicable" for n in set(BUILTINS) - set(RUNNING)), st


def test_syscalls_getppid(exporter):
    before = exporter.metrics().value("syscalls_total", syscall="getppid")
    for _ in range(N_GETPPID):
        os.getppid()

    def check(m):
        d = m.value("syscalls_total", syscall="getppid") - before
        return d >= N_GETPPID, f"syscalls_total{{syscall=getppid}} grew by {d}, expected >= {N_GETPPID}"
    grown(exporter, check, "getppid count")


@pytest.fixture
def direct_io_file():
    # Not /tmp-style tmpfs: the file must live on the root block device.
    d = tempfile.mkdtemp(prefix="bpfleet-it-io-", dir="/var/tmp")
    path = os.path.join(d, "data")
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.rmdir(d)


def test_block_io_direct(exporter, direct_io_file):
    disk = disk_of(os.path.dirname(direct_io_file))
    buf = mmap.mmap(-1, IO_CHUNK)       # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(IO_CHUNK))
    calls = IO_BYTES // IO_CHUNK
    m0 = exporter.metrics()
    b0 = {op: m0.value("bio_bytes_total", disk=disk, op=op) for op in ("read", "write")}
    c0 = {op: m0.value("bio_latency_seconds_count", disk=disk, op=op) for op in ("read", "write")}

    fd = os.open(direct_io_file, os.O_CREAT | os.O_WRONLY | os.O_DIRECT, 0o600)
    try:
        for i in range(calls):
            assert os.pwrite(fd, buf, i * IO_CHUNK) == IO_CHUNK
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(direct_io_file, os.O_RDONLY | os.O_DIRECT)
    try:
        for i in range(calls):
            assert os.preadv(fd, [buf], i * IO_CHUNK) == IO_CHUNK
    finally:
        os.close(fd)

    def check(m):
        msgs, ok = [], True
        for op in ("read", "write"):
            db = m.value("bio_bytes_total", disk=disk, op=op) - b0[op]
            dc = m.value("bio_latency_seconds_count", disk=disk, op=op) - c0[op]
            # Each synchronous O_DIRECT call is at least one request of its own.
            ok &= db >= IO_BYTES and dc >= calls
            msgs.append(f"{op}: bytes +{db} (want >= {IO_BYTES}), requests +{dc} (want >= {calls})")
        return ok, f"disk {disk}: " + "; ".join(msgs)
    m = grown(exporter, check, "block I/O counters")
    # The histogram is consistent: +Inf bucket == count, buckets cumulative.
    for op in ("read", "write"):
        buckets = m.find("bio_latency_seconds_bucket", disk=disk, op=op)
        vals = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
        assert vals == sorted(vals) and buckets
        inf = m.value("bio_latency_seconds_bucket", disk=disk, op=op, le="+Inf")
        assert inf == m.value("bio_latency_seconds_count", disk=disk, op=op)


def test_tcp_loopback(exporter):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(M_CONNECTS + 5)
    port = srv.getsockname()[1]
    m0 = exporter.metrics()
    trans = {k: m0.value("tcp_state_transitions_total", old_state=k[0], new_state=k[1])
             for k in (("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"), ("SYN_RECV", "ESTABLISHED"))}
    act0 = m0.value("tcp_connections_total", port=port, direction="active")
    pas0 = m0.value("tcp_connections_total", port=port, direction="passive")
    try:
        for _ in range(M_CONNECTS):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            a, _ = srv.accept()
            a.close()
            c.close()
    finally:
        srv.close()

    def check(m):
        act = m.value("tcp_connections_total", port=port, direction="active") - act0
        pas = m.value("tcp_connections_total", port=port, direction="passive") - pas0
        dt = {k: m.value("tcp_state_transitions_total", old_state=k[0], new_state=k[1]) - v
              for k, v in trans.items()}
        ok = act >= M_CONNECTS and pas >= M_CONNECTS and all(d >= M_CONNECTS for d in dt.values())
        return ok, f"port {port}: active +{act}, passive +{pas}, transitions {dt} (want >= {M_CONNECTS} each)"
    grown(exporter, check, "tcp counters")


def test_exec_true(exporter):
    m0 = exporter.metrics()
    e0 = m0.value("exec_total", comm="true")
    r0 = m0.value("bpfleet_ringbuf_events_total", program="exec", map="events")
    assert m0.has("bpfleet_ringbuf_events_total", program="exec", map="events")
    for _ in range(K_EXECS):
        subprocess.run(["/bin/true"], check=True)

    def check(m):
        de = m.value("exec_total", comm="true") - e0
        dr = m.value("bpfleet_ringbuf_events_total", program="exec", map="events") - r0
        return de >= K_EXECS and dr >= K_EXECS, f"exec_total{{comm=true}} +{de}, ring events +{dr} (want >= {K_EXECS})"
    m = grown(exporter, check, "exec counters")
    assert m.value("bpfleet_ringbuf_drops_total", program="exec", map="events") == 0


def test_runqlat_grows(exporter):
    m0 = exporter.metrics()
    c0 = m0.value("runq_latency_seconds_count")
    s0 = m0.value("runq_latency_seconds_sum")
    # Every wake-up from a sleep puts this thread on a run queue and then on a CPU: one sample each.
    for _ in range(N_SLEEPS):
        time.sleep(0.0005)

    def check(m):
        dc = m.value("runq_latency_seconds_count") - c0
        ds = m.value("runq_latency_seconds_sum") - s0
        return dc >= N_SLEEPS and ds >= 0, f"runq_latency_seconds_count +{dc} (want >= {N_SLEEPS}), sum +{ds}"
    m = grown(exporter, check, "run queue latency histogram")
    # No labels: the per-CPU array's key is dropped; one histogram.
    assert {tuple(sorted(s.labels)) for s in m.find("runq_latency_seconds_count")} == {()}
    assert m.value("runq_latency_seconds_bucket", le="+Inf") == m.value("runq_latency_seconds_count")


def test_oomkill_global_exported(exporter):
    m = exporter.metrics()
    assert m.has("oom_kills_total")
    assert m.value("oom_kills_total") >= 0
    assert not math.isnan(m.value("oom_kills_total"))
