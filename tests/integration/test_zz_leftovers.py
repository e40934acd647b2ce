"""Runs last (file order): after every exporter of the session has stopped, nothing of ours
is left in the kernel or on bpffs. See harness.Tracker for how "ours" is told apart from BPF
objects that other processes on this machine load meanwhile.

The first tests check the checker: it must see objects of ours that are alive, both held by a
running exporter and (after a crash) held only by pins."""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from harness import TRACKER, bpftool_json, deadline_poll


def test_leak_check_sees_running_exporter(exporters):
    e = exporters({"syscalls": {}, "exec": {}})
    progs, maps = e.snapshot_ids()
    left = TRACKER.leftovers()
    assert set(left.get("programs held by our exporters", [])) >= progs, left
    assert e.pin_root in left.get("pin roots", []), left


def test_crash_leftovers_detected_then_cleaned_by_next_start(tmp_path, registry, exporters):
    """SIGKILL an exporter: its pinned links keep its programs attached with no process holding
    them. The leak check must see that; the next exporter on the same pin root must remove it."""
    a = exporters({"syscalls": {}}, start=True)
    progs, maps = a.snapshot_ids()
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    a.stopped = True  # we crashed it on purpose; don't assert a clean exit
    shutil.rmtree(a.sockdir, ignore_errors=True)
    assert Path(a.pin_root, "syscalls").is_dir(), "a crash leaves the pins"
    live = {p["id"] for p in bpftool_json("prog", "show")}
    assert progs & live, "pinned links keep the programs alive after the crash"
    left = TRACKER.leftovers()
    assert "unowned programs named like ours" in left and a.pin_root in left.get("pin roots", []), left

    b = exporters({"exec": {}}, pin_root=a.pin_root)   # same pin root, other program
    deadline_poll(lambda: not ({p["id"] for p in bpftool_json("prog", "show")} & progs), 10,
                  what="the crashed exporter's programs to be freed after the next start")
    assert not Path(a.pin_root, "syscalls").exists()
    assert b.program("exec")["state"] == "attached"


def test_no_bpf_leftovers():
    assert TRACKER.started
    if not TRACKER.pids:
        pytest.skip("no exporter ran in this session")
    assert TRACKER.prog_ids and TRACKER.map_ids, "no BPF ids were recorded from our exporters"
    left = TRACKER.wait_clean()
    assert not left, "left behind after the session:\n" + json.dumps(left, indent=2)
    assert not [p for p in os.listdir("/sys/fs/bpf") if p.startswith(TRACKER.pin_prefix)]
