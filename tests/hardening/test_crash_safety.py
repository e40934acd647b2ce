"""Crash safety: kill -9 the exporter in the middle of an upgrade and in the middle of a scrape;
the next exporter on the same pin root cleans up what the dead one pinned, and nothing is
leaked - the BPF programs and maps named like ours are back to what they were before.

Policy (docs/reliability.md): the exporter cleans up rather than adopts. Pinned links keep a
dead exporter's programs attached; the next start removes every pin under pin_root, the kernel
frees the programs and maps, and the new exporter loads its config afresh (counters restart,
which Prometheus' rate() handles as a reset)."""
from __future__ import annotations

import ctypes as C
import os
import shutil
import signal
import struct
import threading
import time
from pathlib import Path

import pytest

from harness import (BPF_FS, TRACKER, Exporter, bpftool_json, build, builtin_version, deadline_poll,
                     fd_bpf_ids)

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ROOT / "tests" / "faults"     # test-only exporter plugins (bpfleet ships none)


def ours_now() -> tuple[set[int], set[int]]:
    """Ids of live BPF programs and maps named like ours (whoever holds them)."""
    progs = {p["id"] for p in bpftool_json("prog", "show") if p.get("name", "") in TRACKER.names}
    maps = {m["id"] for m in bpftool_json("map", "show") if m.get("name", "") in TRACKER.names}
    return progs, maps


def foreign(progs: set[int], maps: set[int], ours: set[int]) -> tuple[set[int], set[int]]:
    """Of these ids, those held by a live process that is not one of our exporters (another
    bpfleet on this machine may run programs named like ours)."""
    from harness import all_holders
    ph, mh = all_holders()
    return ({i for i in progs if ph.get(i, set()) - ours}, {i for i in maps if mh.get(i, set()) - ours})


def kill9(e: Exporter) -> tuple[set[int], set[int]]:
    """SIGKILL `e`; -> the BPF ids it held just before."""
    held = fd_bpf_ids(e.proc.pid)
    TRACKER.note_exporter(e.proc.pid)
    e.proc.send_signal(signal.SIGKILL)
    e.proc.wait(10)
    e.stopped = True
    e._close_files()
    shutil.rmtree(e.sockdir, ignore_errors=True)
    return held


def assert_only_held_by(e: Exporter, baseline: tuple[set[int], set[int]], pids: set[int]) -> None:
    """Every live BPF object named like ours and new since `baseline` is held by `e` (or by a
    process that is none of ours)."""
    held_p, held_m = e.snapshot_ids()

    def extra():
        p, m = ours_now()
        p, m = p - baseline[0] - held_p, m - baseline[1] - held_m
        fp, fm = foreign(p, m, pids)
        return p - fp, m - fm
    deadline_poll(lambda: extra() == (set(), set()), 10,
                  what=f"only the restarted exporter's BPF objects alive (extra: {extra()})")


@pytest.fixture
def crash_registry(hard_registry, tmp_path_factory):
    """The hardening registry plus the scrape benchmark's map (100k series to be slow to scrape)."""
    reg = hard_registry
    if not (reg / "benchmap").exists():
        build(reg, ROOT / "bench" / "programs" / "benchmap")
    return reg


def test_kill9_mid_upgrade_then_restart_cleans_up(hard_exporters, hard_registry):
    baseline = ours_now()
    pin_root = TRACKER.new_pin_root()
    programs = {"syscalls": {}, "runqlat": {}, "exec": {}}
    pids, killed, finished = set(), [], []
    # Upgrades (knobs flipped: a new load, maps carried over) killed at increasing delays, so
    # that the kill lands in every phase: open, verifier, attach, gate flip, detach, pin.
    for i, delay in enumerate([0.0, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08]):
        e = hard_exporters(programs, pin_root=pin_root)
        pids.add(e.proc.pid)
        if i:   # the previous one's pins were removed at this start, its objects freed
            assert_only_held_by(e, baseline, pids)
        held = e.snapshot_ids()
        assert held[0], "it holds its programs"
        t = threading.Thread(target=lambda: _quietly(e.admin, "PUT", "/programs/syscalls",
                                                     {"knobs": {"by_process": True}}, 10))
        t.start()
        time.sleep(delay)
        killed.append(kill9(e))
        t.join(15)
        finished.append(f"upgraded syscalls@{builtin_version('syscalls')}" in e.stderr_path.read_text())
    # Some kills landed before the upgrade was done (and, at the longer delays, maybe after).
    assert not all(finished), finished
    # The dead exporters' pins keep their programs attached until someone cleans up.
    assert any((Path(pin_root) / "syscalls").iterdir())
    final = hard_exporters(programs, pin_root=pin_root)
    pids.add(final.proc.pid)
    final.wait_attached(*programs)
    assert_only_held_by(final, baseline, pids)
    for p, m in killed:
        gone_p, gone_m = TRACKER.ours_alive(p, m)
        assert not gone_p and not gone_m, f"a killed exporter's objects survive: {gone_p} {gone_m}"
    final.stop()     # asserts exit 0, pins gone, its objects freed
    deadline_poll(lambda: _new_ours(baseline, pids) == (set(), set()), 10,
                  what=f"BPF objects named like ours back to baseline (left: {_new_ours(baseline, pids)})")


def test_exporter_crashing_on_a_load_then_restart_cleans_up(hard_exporters, hard_registry):
    """The fault plugin the rollout e2e tests install (tests/faults/bpfleet_fault_crash.py)
    makes the exporter exit 70 when asked to load one exact artifact, before it loads it; the
    programs it ran stay attached through their pins until the next start cleans them up."""
    from core import registry as reg
    baseline = ours_now()
    pin_root = TRACKER.new_pin_root()
    crash = f"runqlat@{reg.versions(hard_registry, 'runqlat')[-1]}"
    env = {"PYTHONPATH": str(FAULTS), "BPFLEET_EXPORTER_PLUGINS": "bpfleet_fault_crash",
           "BPFLEET_FAULT_CRASH_ON_LOAD": crash}
    e = hard_exporters({"syscalls": {}}, pin_root=pin_root, env=env)
    e.wait_attached("syscalls")
    held = fd_bpf_ids(e.proc.pid)
    _quietly(e.admin, "PUT", "/programs/runqlat", {}, 10)
    assert e.proc.wait(10) == 70
    TRACKER.note_exporter(e.proc.pid)
    e.stopped = True
    e._close_files()
    shutil.rmtree(e.sockdir, ignore_errors=True)
    assert f"BPFLEET_FAULT_CRASH_ON_LOAD={crash}: crashing on purpose" in e.stderr_path.read_text()
    assert "loaded runqlat" not in e.stderr_path.read_text()
    assert any((Path(pin_root) / "syscalls").iterdir()), "the dead exporter's pins are left"
    assert not (Path(pin_root) / "runqlat").exists()
    final = hard_exporters({"syscalls": {}, "runqlat": {}}, pin_root=pin_root)   # no plugin
    final.wait_attached("syscalls", "runqlat")
    pids = {e.proc.pid, final.proc.pid}
    assert_only_held_by(final, baseline, pids)
    gone_p, gone_m = TRACKER.ours_alive(*held)
    assert not gone_p and not gone_m, f"the crashed exporter's objects survive: {gone_p} {gone_m}"
    final.stop()
    deadline_poll(lambda: _new_ours(baseline, pids) == (set(), set()), 10,
                  what=f"BPF objects named like ours back to baseline (left: {_new_ours(baseline, pids)})")


def test_kill9_mid_scrape_then_restart_cleans_up(hard_exporters, crash_registry):
    from exporter import libbpf
    from exporter.libbpf import ffi
    baseline = ours_now()
    pin_root = TRACKER.new_pin_root()
    programs = {"benchmap": {"knobs": {"count_execs": False}}, "syscalls": {}}
    pids = set()
    for attempt in range(3):
        e = hard_exporters(programs, registry=crash_registry, pin_root=pin_root)
        pids.add(e.proc.pid)
        if attempt:
            assert_only_held_by(e, baseline, pids)
        # 100k keys: a scrape takes a good fraction of a second, so the kill lands inside one.
        pin = next(Path(pin_root, "benchmap").glob("*/map_bench_counts"))
        get = ffi.lib.bpf_obj_get
        get.restype, get.argtypes = C.c_int, [C.c_char_p]
        fd = get(str(pin).encode())
        assert fd >= 0, pin
        try:
            n = 100_000
            keys = b"".join(struct.pack("<16sI", f"w{i % 1000}".encode(), i) for i in range(n))
            libbpf.update_batch(fd, keys, struct.pack("<Q", 1) * n, n)
        finally:
            os.close(fd)
        started = threading.Event()

        def scrape():
            started.set()
            _quietly(e.get, "/metrics", 10)
        t = threading.Thread(target=scrape)
        t.start()
        started.wait()
        time.sleep(0.03 + 0.05 * attempt)
        kill9(e)
        t.join(15)
    final = hard_exporters(programs, registry=crash_registry, pin_root=pin_root)
    pids.add(final.proc.pid)
    assert_only_held_by(final, baseline, pids)
    # A fresh start, nothing adopted: the new map is read and empty (the killed ones held 100k
    # keys each), so bench_events_total has no series at all.
    m = final.metrics()
    assert m.value("bpfleet_map_entries", program="benchmap", map="bench_counts") == 0
    assert not m.has("bench_events_total"), "a fresh start, nothing adopted"
    final.stop()
    deadline_poll(lambda: _new_ours(baseline, pids) == (set(), set()), 10,
                  what=f"BPF objects named like ours back to baseline (left: {_new_ours(baseline, pids)})")
    assert not [p for p in os.listdir(BPF_FS) if p == Path(pin_root).name]


def _new_ours(baseline, pids) -> tuple[set[int], set[int]]:
    p, m = ours_now()
    p, m = p - baseline[0], m - baseline[1]
    fp, fm = foreign(p, m, pids)
    return p - fp, m - fm


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass      # the exporter was killed under the request: that's the point
