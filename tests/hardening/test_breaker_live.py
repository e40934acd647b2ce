"""The circuit breaker on the real kernel: a deliberately expensive program is detached within
the stated time (core/budget.py time_to_act) while the other programs keep running; a
program with a sampling knob is degraded instead and keeps its counts; re-enabling follows the
configured policy."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from core.budget import time_to_act
from harness import REPORT, deadline_poll

INTERVAL, WINDOWS, MIN_EVENTS = 0.5, 2, 200
BREAKER = (f"[breaker]\ninterval_seconds = {INTERVAL}\nwindows = {WINDOWS}\n"
           f"min_events = {MIN_EVENTS}\n")
SLACK = 3.0     # loading, scheduling, the status poll: on top of the stated bound


@pytest.fixture
def syscall_load():
    """Plenty of syscalls, so every window has enough runs to judge."""
    p = subprocess.Popen([sys.executable, "-c", "import os\nwhile True: os.getppid()"])
    yield p
    p.kill()
    p.wait(10)


def state(e, name):
    return e.program(name)


def wait_state(e, name, want, timeout):
    return deadline_poll(lambda: (s := state(e, name)) and s["state"] == want and s, timeout,
                         what=f"{name} {want}")


def test_expensive_program_is_detached_in_time_others_keep_running(hard_exporters, syscall_load):
    e = hard_exporters({"costly": {}, "syscalls": {}, "exec": {}}, extra_config=BREAKER)
    ready = time.time()
    bound = time_to_act(INTERVAL, WINDOWS, levels=0)
    st = wait_state(e, "costly", "tripped", bound + SLACK + 5)
    took = st["budget"]["tripped_at"] - ready
    assert took <= bound + SLACK, f"detached after {took:.1f}s, stated bound {bound}s"
    REPORT.append(f"circuit breaker: costly detached {took:.2f}s after the exporter was ready "
                  f"(stated bound {bound:g}s: interval {INTERVAL}s, {WINDOWS} windows)")
    b = st["budget"]
    assert st["tripped"].startswith("over budget: costly_prog averaged"), st
    assert b["tripped"] and b["breaches"] == 1 and b["degraded_level"] == 0, b
    assert b["limits"] == {"ns_per_event": 100.0, "cpu_share": None}
    assert b["window"]["over"] and b["window"]["ns_per_event"]["costly_prog"] > 100, b
    assert [h["action"] for h in b["history"]] == ["trip"], b
    assert st["version"] is None and "costly_prog" not in (st.get("programs") or {})
    # The kernel no longer runs it: no BPF program of that name is held by the exporter.
    progs = {p["name"] for p in __import__("harness").bpftool_json("prog", "show")
             if p["id"] in e.snapshot_ids()[0]}
    assert "costly_prog" not in progs and "sys_enter" in progs, progs
    m = e.metrics()
    assert m.value("bpfleet_program_tripped", program="costly") == 1
    assert m.value("bpfleet_program_budget_breaches_total", program="costly") == 1
    assert m.value("bpfleet_program_attached", program="costly") == 0
    assert m.value("bpfleet_program_tripped", program="syscalls") == 0
    assert not m.has("costly_calls_total")
    # The others keep running and counting.
    before = m.value("syscalls_total", syscall="getppid")
    deadline_poll(lambda: e.metrics().value("syscalls_total", syscall="getppid") > before + 1000, 10,
                  what="syscalls counting after the trip")
    assert state(e, "syscalls")["state"] == "attached" and state(e, "exec")["state"] == "attached"
    assert "circuit breaker: detached and unloaded costly@1.0.0" in e.stderr_path.read_text()

    # Manual policy: it stays off until deployed again; a PUT re-enables it (and resets).
    time.sleep(3 * INTERVAL)
    assert state(e, "costly")["state"] == "tripped"
    code, body = e.admin("PUT", "/programs/costly", {"version": "1.0.0"})
    assert code == 200 and body["program"]["state"] == "attached", body
    # Still too dear: detached again, counted as a second breach.
    st = wait_state(e, "costly", "tripped", bound + SLACK + 5)
    assert st["budget"]["breaches"] == 2 and [h["action"] for h in st["budget"]["history"]] == \
        ["trip", "reset", "trip"], st["budget"]


def test_config_budget_override_and_reload_reenables(hard_exporters, syscall_load):
    """syscalls has no budget in its manifest; the host's config gives it an impossible one.
    A config reload re-applies the config as written: the program comes back."""
    e = hard_exporters({"syscalls": {"budget": {"ns_per_event": 1}}, "exec": {}}, extra_config=BREAKER)
    st = wait_state(e, "syscalls", "tripped", time_to_act(INTERVAL, WINDOWS, 0) + SLACK + 5)
    assert st["budget"]["source"] == "config" and st["budget"]["limits"]["ns_per_event"] == 1.0
    assert state(e, "exec")["state"] == "attached"
    code, body = e.admin("POST", "/reload")
    assert code == 200, body
    st = state(e, "syscalls")
    assert st["state"] == "attached" and st["tripped"] is None, st


def test_reenable_after_cooldown(hard_exporters, syscall_load):
    e = hard_exporters({"costly": {}}, extra_config=BREAKER + 'reenable = "after"\ncooldown_seconds = 1\n')
    deadline_poll(lambda: (state(e, "costly")["budget"] or {}).get("trips", 0) >= 2, 30,
                  what="two trips with a re-enable between")
    b = state(e, "costly")["budget"]
    actions = [h["action"] for h in b["history"]]
    assert actions[:3] == ["trip", "reenable", "trip"], b
    assert b["reenable"] == "after"


def test_degrade_with_sampling_knob_keeps_counts(hard_exporters, syscall_load):
    e = hard_exporters({"sampled": {}, "syscalls": {}}, extra_config=BREAKER)
    bound = time_to_act(INTERVAL, WINDOWS, levels=2)
    seen = []

    def degraded():
        m = e.metrics()
        seen.append(m.value("sampled_events_total"))
        st = state(e, "sampled")
        return st["budget"] and st["budget"]["degraded_level"] == 2 and st
    t0 = time.monotonic()
    st = deadline_poll(degraded, bound + SLACK + 10, what="sampled degraded twice")
    REPORT.append(f"circuit breaker: sampled degraded twice in {time.monotonic() - t0:.2f}s "
                  f"(stated bound {bound:g}s), counts never went down ({len(seen)} scrapes)")
    assert st["state"] == "attached" and st["knobs"] == {"sample_every": 1000}, st
    assert seen == sorted(seen), f"the count went down across the degrade steps: {seen}"
    assert [h["action"] for h in st["budget"]["history"]] == ["degrade", "degrade"], st["budget"]
    assert st["budget"]["degraded_to"] == {"sample_every": 1000}
    # At one costly run in 1000 it is within budget: it stays attached and degraded.
    time.sleep((WINDOWS + 2) * INTERVAL)
    st = state(e, "sampled")
    assert st["state"] == "attached" and st["budget"]["degraded_level"] == 2, st["budget"]
    assert not st["budget"]["window"]["over"], st["budget"]
    m = e.metrics()
    assert m.value("bpfleet_program_degraded_level", program="sampled") == 2
    assert m.value("bpfleet_program_tripped", program="sampled") == 0
    assert m.value("sampled_events_total") >= seen[-1]
    assert state(e, "syscalls")["state"] == "attached"
