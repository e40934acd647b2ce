"""Drive known workloads and check every built-in program counts exactly that much.

All built-in programs run in one exporter for the module. Each test scrapes, drives its
workload, then polls /metrics (with a deadline, no fixed sleeps) until the counters have grown
by the amount of work done, and then asserts they grew by exactly that amount: a program that
counts an event twice fails. Exact counts need a series only the test feeds, so each workload
gets one of its own (workload_kit.py): a private TCP port, a loop device, a unique command name,
a private memory cgroup. Lower bounds remain only where a series is machine-wide by design (no
label can single out the test's work); each says why.
"""
from __future__ import annotations

import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import tomli

from harness import LOADABLE, PROGRAMS_DIR, BUILTINS, Metrics, deadline_poll
from workload_kit import LoopDevice, MemoryCgroup, listen_on_private_port, vmstat_oom_kills

N_GETPPID = 5000
IO_CHUNK = 64 << 10         # 64 KiB per O_DIRECT call: one request (see the limits checked below)
IO_BYTES = 4 << 20          # written, then read back
M_CONNECTS = 20
K_EXECS = 20
N_SLEEPS = 50
K_OOMS = 2
OOM_LIMIT = 32 << 20
OOM_CHILD = "b = bytearray(256 << 20); b[::4096] = b'x' * (len(b) // 4096)"   # touch 256 MiB
OOM_WINDOWS = 5             # tries to find a window without anybody else's OOM kill


# bcc-source programs without kernel headers are not_applicable (test_bcc_programs.py)
RUNNING = LOADABLE


@pytest.fixture(scope="module")
def exporter(module_exporters):
    e = module_exporters({name: {} for name in BUILTINS})
    e.wait_attached(*RUNNING)
    return e


def unique_comm(tag: str) -> str:
    """A command name nothing else on the machine has (the kernel keeps 15 characters)."""
    return f"bw{tag}{uuid.uuid4().hex[:8]}"[:15]


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


def exactly(exporter, deltas, want: dict, what: str) -> None:
    """Wait until every delta in deltas(metrics) reached want[key], then require it equal: the
    workload is over before the first scrape (tracepoints fire inline), so more is double counting."""
    m = grown(exporter, lambda m: (all(v >= want[k] for k, v in deltas(m).items()), deltas(m)), what)
    got = deltas(m)
    assert got == want, f"{what}: grew by {got}, the workload did {want}"


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


GETPPID_CHILD = """import os, sys
n, comm = int(sys.argv[1]), sys.argv[2]
os.read(0, 1)                                   # wait for the exporter to attach
with open("/proc/self/comm", "w") as f:
    f.write(comm)
for _ in range(n):
    os.getppid()
"""


def test_syscalls_getppid(exporter, exporters):
    """A child that calls getppid exactly N times, counted by an exporter whose target_pid knob
    is that child: syscalls_total{syscall=getppid} must grow by exactly N. With by_process on
    too, the child's unique comm's series must be exactly N as well."""
    comm = unique_comm("sc")
    child = subprocess.Popen([sys.executable, "-c", GETPPID_CHILD, str(N_GETPPID), comm],
                             stdin=subprocess.PIPE)
    try:
        mine = exporters({"syscalls": {"knobs": {"target_pid": child.pid, "by_process": True}}})
        mine.wait_attached("syscalls")
        wide0 = exporter.metrics().value_or_zero("syscalls_total", syscall="getppid")   # getppid is rare
        child.stdin.write(b"g")
        child.stdin.close()
        assert child.wait(timeout=60) == 0
    finally:
        child.kill()
        child.wait()

    exactly(mine, lambda m: {
        # Absolute values: the child has made no getppid call before (it is blocked in read()).
        "syscalls_total": m.value_or_zero("syscalls_total", syscall="getppid"),
        "by_process": m.value_or_zero("syscalls_by_process_total", comm=comm, syscall="getppid"),
    }, {"syscalls_total": N_GETPPID, "by_process": N_GETPPID}, f"getppid of pid {child.pid} ({comm})")
    # The default, unfiltered program counts every process's getppid: machine-wide, so other
    # processes may add to it and only a lower bound is knowable.
    grown(exporter, lambda m: (m.value("syscalls_total", syscall="getppid") - wide0 >= N_GETPPID,
                               m.value("syscalls_total", syscall="getppid") - wide0), "machine-wide getppid")


@pytest.fixture
def loop_disk(tmp_path):
    with LoopDevice(tmp_path / "disk.img", 2 * IO_BYTES) as loop:
        yield loop


def test_block_io_direct(exporter, loop_disk):
    """O_DIRECT writes then reads on a loop device of our own: the (disk, op) series has no other
    source, and each call is one request, so bytes and request counts are exact."""
    disk, calls = loop_disk.name, IO_BYTES // IO_CHUNK
    # One call is one request only if the queue never splits it: not above max_sectors_kb, and
    # few enough (page-sized, at worst) segments.
    assert loop_disk.queue_limit("max_sectors_kb") << 10 >= IO_CHUNK
    assert loop_disk.queue_limit("max_segments") * mmap.PAGESIZE >= IO_CHUNK
    buf = mmap.mmap(-1, IO_CHUNK)       # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(IO_CHUNK))
    ops = [(s, op) for s in ("bio_bytes_total", "bio_latency_seconds_count") for op in ("read", "write")]
    m0 = exporter.metrics()   # a loop device may have been used (and counted) before ours
    base = {(s, op): m0.value_or_zero(s, disk=disk, op=op) for s, op in ops}

    # One descriptor for all of it, closed only after counting: where udev runs, closing a disk
    # opened for writing makes it probe (read) the disk.
    fd = os.open(loop_disk.dev, os.O_RDWR | os.O_DIRECT)
    try:
        for i in range(calls):
            assert os.pwrite(fd, buf, i * IO_CHUNK) == IO_CHUNK
        for i in range(calls):
            assert os.preadv(fd, [buf], i * IO_CHUNK) == IO_CHUNK
        want = {"bio_bytes_total:read": IO_BYTES, "bio_bytes_total:write": IO_BYTES,
                "bio_latency_seconds_count:read": calls, "bio_latency_seconds_count:write": calls}
        exactly(exporter, lambda m: {f"{s}:{op}": m.value_or_zero(s, disk=disk, op=op) - base[s, op]
                                     for s, op in ops}, want, f"block I/O on {disk}")
        m = exporter.metrics()
    finally:
        os.close(fd)
    # The histogram is consistent: +Inf bucket == count, buckets cumulative.
    for op in ("read", "write"):
        buckets = m.find("bio_latency_seconds_bucket", disk=disk, op=op)
        vals = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
        assert vals == sorted(vals) and buckets
        inf = m.value("bio_latency_seconds_bucket", disk=disk, op=op, le="+Inf")
        assert inf == m.value("bio_latency_seconds_count", disk=disk, op=op)


TRANSITIONS = (("CLOSE", "SYN_SENT"), ("SYN_SENT", "ESTABLISHED"), ("SYN_RECV", "ESTABLISHED"))


def test_tcp_loopback(exporter):
    """M connections to a port nobody else uses: its active and passive series grow by exactly M."""
    srv = listen_on_private_port()
    srv.listen(M_CONNECTS + 5)
    port = srv.getsockname()[1]
    m0 = exporter.metrics()
    trans = {k: m0.value("tcp_state_transitions_total", old_state=k[0], new_state=k[1]) for k in TRANSITIONS}
    conns0 = {d: m0.value_or_zero("tcp_connections_total", port=port, direction=d) for d in ("active", "passive")}
    try:
        for _ in range(M_CONNECTS):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            a, _ = srv.accept()
            a.close()
            c.close()
    finally:
        srv.close()

    exactly(exporter, lambda m: {d: m.value_or_zero("tcp_connections_total", port=port, direction=d) - v
                                 for d, v in conns0.items()},
            {"active": M_CONNECTS, "passive": M_CONNECTS}, f"tcp_connections_total of port {port}")

    # State transitions carry no port label: every TCP socket on the machine feeds them, so only
    # a lower bound is knowable.
    def check(m):
        dt = {k: m.value("tcp_state_transitions_total", old_state=k[0], new_state=k[1]) - v
              for k, v in trans.items()}
        return all(d >= M_CONNECTS for d in dt.values()), f"transitions {dt} (want >= {M_CONNECTS} each)"
    grown(exporter, check, "tcp state transitions")


def test_exec_unique_command(exporter, tmp_path):
    """K execs of a copy of /bin/true under a name nothing else has: exec_total{comm} is exactly K."""
    comm = unique_comm("ex")
    prog = tmp_path / comm
    shutil.copy2("/bin/true", prog)
    m0 = exporter.metrics()
    assert m0.has("bpfleet_ringbuf_events_total", program="exec", map="events")
    r0 = m0.value("bpfleet_ringbuf_events_total", program="exec", map="events")
    assert not m0.has("exec_total", comm=comm)
    for _ in range(K_EXECS):
        subprocess.run([str(prog)], check=True)

    exactly(exporter, lambda m: {"exec_total": m.value_or_zero("exec_total", comm=comm)},
            {"exec_total": K_EXECS}, f"exec_total{{comm={comm}}}")
    # Ring buffer events are counted per program, not per command: every exec on the machine
    # adds one, so only a lower bound is knowable.
    m = grown(exporter, lambda m: (m.value("bpfleet_ringbuf_events_total", program="exec", map="events")
                                   - r0 >= K_EXECS, "ring events"), "exec ring events")
    assert m.value("bpfleet_ringbuf_drops_total", program="exec", map="events") == 0


def test_runqlat_grows(exporter):
    m0 = exporter.metrics()
    c0 = m0.value("runq_latency_seconds_count")
    s0 = m0.value("runq_latency_seconds_sum")
    # Every wake-up from a sleep puts this thread on a run queue and then on a CPU: one sample
    # each. The histogram has no labels (every task on every CPU feeds it): a lower bound only.
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


def test_oom_kills_counted_once(exporter):
    """K real OOM kills in a private memory cgroup. oom_kills_total is one machine-wide counter,
    so it is exact only in a window where the kernel's own machine-wide count (/proc/vmstat
    oom_kill, read before the first scrape and after the last) grew by our K alone; other tests
    on this machine OOM-kill too, so try a few windows until one is quiet."""
    for _ in range(OOM_WINDOWS):
        v0 = vmstat_oom_kills()
        b0 = exporter.metrics().value("oom_kills_total")
        with MemoryCgroup(OOM_LIMIT) as cg:
            for _ in range(K_OOMS):
                r = cg.run(sys.executable, "-c", OOM_CHILD)
                assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr)
            assert cg.oom_kills() == K_OOMS, f"the kernel counted {cg.oom_kills()} OOM kills in {cg.path}"
        m = grown(exporter, lambda m: (m.value("oom_kills_total") - b0 >= K_OOMS, m.value("oom_kills_total") - b0),
                  "oom_kills_total")
        grew = m.value("oom_kills_total") - b0
        others = vmstat_oom_kills() - v0 - K_OOMS
        if others == 0:
            assert grew == K_OOMS, f"oom_kills_total grew by {grew}, the kernel killed {K_OOMS}"
            return
        assert grew >= K_OOMS
    pytest.fail(f"no window of {OOM_WINDOWS} without somebody else's OOM kill: cannot count exactly")
