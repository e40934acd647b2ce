"""OTLP export end to end: real exporters on this kernel push to a real OTLP receiver (gRPC and
HTTP/protobuf, decoded with opentelemetry-proto), and what arrives is checked against /metrics.

Exporter A: exec, runqlat, biolatency and otlpt, gRPC, cumulative. Exporter B: otlpt only,
HTTP/protobuf, delta. otlpt (tests/otlp/otlpt) watches one process, the workload, so once the
workload stops every otlpt value holds still: then one OTLP push and one scrape show the same
moment, and must agree exactly. System-wide programs (runqlat, biolatency, exec) never hold
still; for them a push must lie between two scrapes, value by value and bucket by bucket.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import Exporter, Metrics, deadline_poll, free_port
from otlp_receiver import (
    Receiver, exponential_le_buckets, explicit_le_buckets, log_records, number, points,
)

ROOT = Path(__file__).resolve().parents[2]
INTERVAL = 1
CUMULATIVE, DELTA = 2, 1


def toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {toml(x)}' for k, x in v.items()) + " }"
    return json.dumps(v)


def otlp_toml(endpoint: str, protocol: str, **more) -> str:
    """An [otlp] table pushing every INTERVAL seconds, with a 2 s timeout unless `more` says."""
    fields = dict(endpoint=endpoint, protocol=protocol, interval_seconds=INTERVAL, timeout_seconds=2)
    fields.update(more)
    return "[otlp]\n" + "\n".join(f"{k} = {toml(v)}" for k, v in fields.items())


def manifest_version(name: str, programs: Path = ROOT / "programs") -> str:
    import tomli
    return tomli.loads((programs / name / "manifest.toml").read_text())["version"]


def otlpt_state(m: Metrics, extra_comm: str | None = None) -> dict:
    out = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in m.samples if s.name.startswith("otlpt_")}
    if extra_comm:
        out["exec"] = m.value("exec_total", comm=extra_comm)
    return out


def wait_stable(e: Exporter, comm: str | None = None, timeout: float = 15.0) -> Metrics:
    """Scrape until two scrapes 0.4 s apart agree on every otlpt value (the workload is idle)."""
    end = time.monotonic() + timeout
    prev = otlpt_state(e.metrics(), comm)
    while True:
        time.sleep(0.4)
        m = e.metrics()
        cur = otlpt_state(m, comm)
        if cur == prev and cur:
            return m
        if time.monotonic() > end:
            raise AssertionError("otlpt values did not settle")
        prev = cur


def push_after(r: Receiver, t_ns: int, timeout: float = 10.0):
    """The first metrics request whose snapshot was taken after t_ns."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for rec in r.snapshot("metrics"):
            pts = points(rec.request)
            if pts and min(p.time for p in pts) > t_ns:
                return rec, pts
        time.sleep(0.05)
    raise AssertionError(f"no metrics push after {t_ns}")


def prom_buckets(m: Metrics, name: str, attrs: dict) -> list[tuple[float, float]]:
    return sorted((float(s.labels["le"]), s.value) for s in m.find(f"{name}_bucket", **attrs))


@dataclass
class Live:
    a: Exporter
    b: Exporter
    ra: Receiver
    rb: Receiver
    workload: object
    comm: str
    true_pids: list
    own_pids: list
    settled: Metrics          # A, after the workload stopped
    settled_b: Metrics
    settled_ns: int


@pytest.fixture(scope="module")
def live(otlp_registry, workload, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("otlp-live")
    ra, rb = Receiver("grpc").start(), Receiver("http/protobuf").start()
    knobs = {"knobs": {"target_tgid": workload.pid}}
    a = Exporter(tmp / "a", otlp_registry, {"exec": {}, "runqlat": {}, "biolatency": {}, "otlpt": knobs},
                 extra_config=otlp_toml(ra.endpoint, "grpc", events_per_second=5000,
                                        resource={"deployment.environment.name": "test"}))
    b = Exporter(tmp / "b", otlp_registry, {"otlpt": knobs},
                 extra_config=otlp_toml(rb.endpoint, "http/protobuf", temporality="delta", events=False))
    started = []
    try:
        for e in (a, b):
            started.append(e.start())
        # A command name nobody else on this machine execs, so exec_total{comm} holds still too.
        comm = f"otlpt-{secrets.token_hex(3)}"
        own = tmp / comm
        shutil.copy("/bin/true", own)
        workload("getppid", 1000)
        workload("write", "300x5,4096x2,70000x1")
        true_pids = workload("exec", "/bin/true", 3)["pids"]
        own_pids = workload("exec", own, 4)["pids"]
        workload("io")
        # Delta needs more than one interval with something in it: a push, then more work.
        push_after(rb, time.time_ns())
        workload("getppid", 500)
        workload("write", "1x3,64x2")
        settled = wait_stable(a, comm)
        settled_b = wait_stable(b)
        yield Live(a, b, ra, rb, workload, comm, true_pids, own_pids, settled, settled_b, time.time_ns())
    finally:
        for e in started:
            e.stop()
        ra.stop()
        rb.stop()


# ---------------------------------------------------------------- resource and scopes

def test_resource_and_scopes(live):
    rec, _pts = push_after(live.ra, 0)
    (rm,) = rec.request.resource_metrics
    res = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
    assert res["service.name"] == "bpfleet-exporter" and res["service.version"]
    assert res["host.name"] == socket.gethostname()
    assert res["os.type"] == "linux" and res["os.version"] == os.uname().release
    assert res["deployment.environment.name"] == "test"          # [otlp.resource] from the config
    scopes = {(sm.scope.name, sm.scope.version) for sm in rm.scope_metrics}
    assert {("otlpt", manifest_version("otlpt", Path(__file__).parent)), ("exec", manifest_version("exec")),
            ("runqlat", manifest_version("runqlat"))} <= scopes


# ---------------------------------------------------------------- one moment, both outputs

def test_settled_push_equals_scrape_exactly(live):
    """The workload is idle: the next push and a scrape after it are the same values."""
    _rec, pts = push_after(live.ra, live.settled_ns)
    m = live.a.metrics()
    assert otlpt_state(m, live.comm) == otlpt_state(live.settled, live.comm)   # still settled
    mine = [p for p in pts if p.scope == "otlpt"]
    kinds = {p.metric: (p.kind, p.unit, p.temporality) for p in mine}
    assert kinds == {
        "otlpt_syscalls_total": ("sum", "", CUMULATIVE),
        "otlpt_write_bytes": ("exponential_histogram", "By", CUMULATIVE),
        "otlpt_write_kibibytes": ("exponential_histogram", "", CUMULATIVE),
        "otlpt_write_kilobytes": ("histogram", "", CUMULATIVE),
        "otlpt_write_blocks": ("histogram", "", CUMULATIVE),
        "otlpt_last_write_bytes": ("gauge", "By", 0),
    }
    checked = 0
    for p in mine:
        attrs = dict(p.attributes)
        if p.kind in ("sum", "gauge"):
            (s,) = m.find(p.metric, **attrs)
            assert number(p.point) == s.value, (p.metric, attrs)
        else:
            le = (exponential_le_buckets(p.point) if p.kind == "exponential_histogram"
                  else explicit_le_buckets(p.point))
            prom = prom_buckets(m, p.metric, attrs)
            by_le = dict(prom)
            for bound, cum in le:                          # bucket by bucket
                assert by_le[bound] == cum, (p.metric, attrs, bound)
            # past the last non-empty exponential bucket Prometheus stays flat up to +Inf
            assert all(v == p.point.count for b, v in prom if b >= le[-1][0])
            assert m.value(f"{p.metric}_count", **attrs) == p.point.count
            if p.point.HasField("sum"):
                assert m.value(f"{p.metric}_sum", **attrs) == pytest.approx(p.point.sum, rel=1e-12)
            else:
                assert not m.find(f"{p.metric}_sum", **attrs)
        checked += 1
    assert checked >= 10
    getppid = next(p for p in mine if p.metric == "otlpt_syscalls_total" and dict(p.attributes) == {"syscall": "getppid"})
    assert number(getppid.point) == 1500                          # exactly what the workload did
    wb = next(p for p in mine if p.metric == "otlpt_write_bytes" and dict(p.attributes) == {"fd": str(live.workload.fd)})
    # 300x5 4096x2 70000x1 1x3 64x2: 1 -> (0.5, 1] index -1; 64 -> (32, 64] index 5; 300 -> (256, 512] index 8 ...
    e = wb.point
    got = {e.positive.offset + j: c for j, c in enumerate(e.positive.bucket_counts) if c}
    assert (e.zero_count, got, e.count, e.sum) == (0, {-1: 3, 5: 2, 8: 5, 11: 2, 16: 1}, 13, 300 * 5 + 4096 * 2 + 70000 + 3 + 128)
    kib = next(p for p in mine if p.metric == "otlpt_write_kibibytes" and dict(p.attributes) == {"fd": str(live.workload.fd)})
    assert kib.point.positive.offset == e.positive.offset - 10    # scale 2^-10 moves every index
    exec_pts = [p for p in pts if p.metric == "exec_total" and dict(p.attributes) == {"comm": live.comm}]
    assert [number(p.point) for p in exec_pts] == [4] == [m.value("exec_total", comm=live.comm)]


def test_busy_programs_lie_between_two_scrapes(live):
    """runqlat, biolatency and exec count the whole machine: a push taken between two scrapes
    has every counter, sum and bucket between theirs."""
    m1 = live.a.metrics()
    t1 = time.time_ns()
    _rec, pts = push_after(live.ra, t1)
    m2 = live.a.metrics()
    busy = [p for p in pts if p.scope in ("runqlat", "biolatency", "exec")]
    # The machine keeps going: a series born between the first scrape and the push (a new comm
    # exec'd, a first IO on a disk) is absent from m1, which is 0 for it. m2 must have them all.
    assert {p.metric for p in busy} >= {"runq_latency_seconds", "exec_total"}
    for p in busy:
        attrs = dict(p.attributes)
        assert p.temporality == CUMULATIVE
        if p.kind == "sum":
            assert m1.value_or_zero(p.metric, **attrs) <= number(p.point) <= m2.value(p.metric, **attrs), \
                (p.metric, attrs)
            continue
        le = (exponential_le_buckets(p.point) if p.kind == "exponential_histogram"
              else explicit_le_buckets(p.point))
        lo, hi = dict(prom_buckets(m1, p.metric, attrs)), dict(prom_buckets(m2, p.metric, attrs))
        assert hi, (p.metric, attrs)
        for bound, cum in le:
            assert bound in hi, (p.metric, bound)                   # the same bounds, exactly
            assert lo.get(bound, 0) <= cum <= hi[bound], (p.metric, attrs, bound)
        assert m1.value_or_zero(f"{p.metric}_count", **attrs) <= p.point.count <= m2.value(f"{p.metric}_count", **attrs)
        if p.point.HasField("sum"):
            lo_s, hi_s = m1.value_or_zero(f"{p.metric}_sum", **attrs), m2.value(f"{p.metric}_sum", **attrs)
            assert lo_s * (1 - 1e-12) <= p.point.sum <= hi_s * (1 + 1e-12)
    runq = [p for p in busy if p.metric == "runq_latency_seconds"]
    assert runq and runq[0].kind == "exponential_histogram" and runq[0].unit == "s"


# ---------------------------------------------------------------- events

def test_exec_events_arrive_as_log_records(live):
    want = set(live.true_pids) | set(live.own_pids)

    def arrived():
        recs = [r for rec in live.ra.snapshot("logs") for r in log_records(rec.request)]
        return [r for r in recs if r["attributes"].get("pid") in want] if \
            want <= {r["attributes"].get("pid") for r in recs} else None
    recs = deadline_poll(arrived, 15, what="exec events as log records")
    by_pid = {r["attributes"]["pid"]: r for r in recs}
    for pid in live.true_pids:
        r = by_pid[pid]
        assert r["body"] == f"exec true pid={pid}"
        a = r["attributes"]
        assert (a["comm"], a["filename"], a["ppid"]) == ("true", "/bin/true", live.workload.pid)
        assert (a["bpfleet.program.name"], a["bpfleet.program.version"]) == ("exec", manifest_version("exec"))
        assert (r["scope"], r["scope_version"], r["event_name"]) == ("exec", manifest_version("exec"),
                                                                     "exec.exec_event")
        assert r["resource"]["service.name"] == "bpfleet-exporter" and r["time"] > 0
    assert {by_pid[p]["attributes"]["comm"] for p in live.own_pids} == {live.comm}
    m = live.a.metrics()
    assert m.value("bpfleet_otlp_events_exported_total") >= len(want)
    assert m.value("bpfleet_otlp_exports_total", signal="logs", result="success") >= 1


# ---------------------------------------------------------------- delta temporality

def test_delta_pushes_add_up_to_the_cumulative_value(live):
    """B pushes deltas: consecutive points of a series tile time without gap or overlap, and
    their sum is what B's /metrics shows (counters, and histogram buckets one by one)."""
    _rec, _pts = push_after(live.rb, live.settled_ns)
    m = live.b.metrics()
    assert otlpt_state(m) == otlpt_state(live.settled_b)
    all_pts = sorted((p for rec in live.rb.snapshot("metrics") for p in points(rec.request)
                      if p.scope == "otlpt"), key=lambda p: p.time)
    assert all_pts and all(p.temporality == DELTA for p in all_pts if p.kind != "gauge")
    series: dict = {}
    for p in all_pts:
        series.setdefault((p.metric, p.attributes), []).append(p)
    for (metric, attrs), seq in series.items():
        if seq[0].kind == "gauge":
            continue
        for prev, cur in zip(seq, seq[1:]):
            assert cur.start == prev.time, (metric, attrs)          # contiguous: nothing lost or doubled
        assert seq[0].start < seq[0].time
        d = dict(attrs)
        if seq[0].kind == "sum":
            assert sum(number(p.point) for p in seq) == m.value(metric, **d), (metric, d)
            continue
        total = sum(p.point.count for p in seq)
        assert total == m.value(f"{metric}_count", **d)
        if seq[0].kind == "exponential_histogram":
            acc, zero = {}, 0
            for p in seq:
                zero += p.point.zero_count
                for j, c in enumerate(p.point.positive.bucket_counts):
                    acc[p.point.positive.offset + j] = acc.get(p.point.positive.offset + j, 0) + c
            prom = dict(prom_buckets(m, metric, d))
            running = zero
            assert prom[0.0] == zero
            for i in sorted(acc):
                running += acc[i]
                assert prom[2.0 ** (i + 1)] == running      # index i is (2^i, 2^(i+1)]
        else:
            counts = [sum(x) for x in zip(*(p.point.bucket_counts for p in seq))]
            bounds = list(seq[0].point.explicit_bounds) + [math.inf]
            running = 0
            prom = dict(prom_buckets(m, metric, d))
            for b, c in zip(bounds, counts):
                running += c
                assert prom[b] == running, (metric, b)
    getppid = series[("otlpt_syscalls_total", (("syscall", "getppid"),))]
    assert sum(number(p.point) for p in getppid) == 1500
    assert sum(1 for p in getppid if number(p.point)) >= 2           # spread over several pushes
    assert number(getppid[-1].point) == 0                             # idle since: zero deltas


# ---------------------------------------------------------------- endpoint down, slow, back

def proc_stats(pid: int) -> tuple[int, int]:
    """(RSS in kB, threads) of a process."""
    with open(f"/proc/{pid}/status") as f:
        st = dict(line.split(":", 1) for line in f)
    return int(st["VmRSS"].split()[0]), int(st["Threads"])


def watch(e: Exporter, seconds: float, during=None) -> Metrics:
    """Scrape every 0.2 s for `seconds` (running `during()` between scrapes); -> the last scrape."""
    end, m = time.monotonic() + seconds, None
    while time.monotonic() < end:
        m = e.metrics()
        if during:
            during()
        time.sleep(0.2)
    return m


def test_endpoint_down_slow_and_back(otlp_registry, workload, tmp_path):
    port = free_port()
    extra = otlp_toml(f"http://127.0.0.1:{port}", "grpc", events_per_second=5000, timeout_seconds=0.5)
    e = Exporter(tmp_path / "c", otlp_registry,
                 {"exec": {}, "otlpt": {"knobs": {"target_tgid": workload.pid}}}, extra_config=extra).start()
    receiver = None
    try:
        execs = lambda: workload("exec", "/bin/true", 2)   # noqa: E731  (events to queue and drop)
        # 1. nothing listens
        watch(e, 3.0, execs)
        early = proc_stats(e.proc.pid)
        m = watch(e, 3.5, execs)
        late = proc_stats(e.proc.pid)
        fails_down = m.value("bpfleet_otlp_exports_total", signal="metrics", result="failure")
        assert fails_down >= 2 and m.value("bpfleet_otlp_exports_total", signal="metrics", result="success") == 0
        assert m.value("bpfleet_otlp_consecutive_failures", signal="metrics") >= 2
        assert m.value("bpfleet_otlp_push_interval_seconds") > INTERVAL       # backing off
        assert m.value("bpfleet_otlp_events_dropped_total", reason="export_failed") > 0
        for q in ("events", "batch"):
            assert m.value("bpfleet_otlp_event_queue_length", queue=q) <= \
                m.value("bpfleet_otlp_event_queue_capacity", queue=q)
        # 2. a collector that answers after the deadline
        receiver = Receiver("grpc", port).start()
        receiver.delay = 1.5
        m = watch(e, 5.0, execs)
        slow = proc_stats(e.proc.pid)
        assert m.value("bpfleet_otlp_exports_total", signal="metrics", result="failure") > fails_down
        assert m.value("bpfleet_otlp_exports_total", signal="metrics", result="success") == 0
        assert m.value("bpfleet_otlp_export_duration_seconds", signal="metrics") < 1.5   # the timeout held
        # nothing grows: threads stay, memory stays within a few MB over many failed pushes
        assert late[1] == early[1] == slow[1], (early, late, slow)
        assert late[0] - early[0] < 8 * 1024 and slow[0] - early[0] < 8 * 1024, (early, late, slow)
        # 3. /metrics never waits for the OTLP side: with a long export timeout and the collector
        # holding the export, a scrape answers while the exporter is still waiting on it.
        e.write_config(e.programs, extra=otlp_toml(f"http://127.0.0.1:{port}", "grpc",
                                                   events_per_second=5000, timeout_seconds=60))
        e.sighup()
        deadline_poll(lambda: e.status()["otlp"]["metrics"]["timeout_seconds"] == 60, 10,
                      what="the reload's 60 s export timeout")
        receiver.delay = 0.0
        receiver.hold()
        deadline_poll(receiver.client_waiting, 30, what="an export held by the collector")
        try:
            m = e.metrics()
        except TimeoutError:
            raise AssertionError("/metrics waited for the OTLP export the collector holds") from None
        assert receiver.client_waiting(), "the scrape answered only after the export gave up"
        assert m.value("bpfleet_program_attached", program="exec") == 1
        receiver.release()
        # 4. the collector is fast again: exports succeed, the failure streak ends
        since = time.time()

        def recovered():
            mm = e.metrics()
            return mm if (mm.value("bpfleet_otlp_exports_total", signal="metrics", result="success") >= 1
                          and mm.value("bpfleet_otlp_consecutive_failures", signal="metrics") == 0) else None
        m = deadline_poll(recovered, 15, what="a successful export after the endpoint came back")
        assert m.value("bpfleet_otlp_push_interval_seconds") <= INTERVAL
        receiver.wait("metrics", after=since)
        pid = workload("exec", "/bin/true", 1)["pids"][0]
        deadline_poll(lambda: any(r["attributes"].get("pid") == pid for rec in receiver.snapshot("logs")
                                  for r in log_records(rec.request)), 15, what="events after recovery")
        # 5. a reload without [otlp] stops the export (and its self-metrics) and nothing else
        assert e.status()["otlp"]["enabled"] is True
        e.write_config(e.programs, extra="")
        e.sighup()
        deadline_poll(lambda: e.status()["otlp"] == {"enabled": False}, 10, what="OTLP stopped by reload")
        m = e.metrics()
        assert not any(s.name.startswith("bpfleet_otlp_") for s in m.samples)
        assert m.value("bpfleet_program_attached", program="exec") == 1
    finally:
        e.stop()
        if receiver:
            receiver.stop()
