"""Series limits and full maps on the real kernel: a map with more keys than its metric's
max_series scrapes as at most max_series series (the rest in one __overflow__ series, counted),
the exposition stays valid (prometheus_client and promtool), the host's config overrides the
manifest's limit (also on reload, without reloading the program), and a full map shows as a
fill ratio of 1 and a failed-insert counter."""
from __future__ import annotations

import shutil
import subprocess

from core.limits import OVERFLOW
from harness import Metrics, deadline_poll

# scripts/setup.sh installs it (Debian package prometheus): missing is a broken setup, not a skip.
PROMTOOL = shutil.which("promtool")

WORKLOAD = """
import os, socket, time
for _ in range(200):
    os.getppid(); os.getpid(); os.getuid(); os.getgid(); os.geteuid(); os.getegid()
    os.stat("/"); os.uname(); os.umask(0o22); os.getcwd(); time.sleep(0)
    s = socket.socket(); s.close(); os.sched_yield(); os.getpriority(0, 0)
    r, w = os.pipe(); os.write(w, b"x"); os.read(r, 1); os.close(r); os.close(w)
"""


def scrape_until(e, ok, what, timeout=15):
    def attempt():
        subprocess.run(["python3", "-c", WORKLOAD], check=True)
        m = e.metrics()
        return ok(m) and m
    return deadline_poll(attempt, timeout, what=what)


def series(m: Metrics, name: str) -> dict:
    return {tuple(sorted(s.labels.items())): s.value for s in m.find(name)}


def test_series_limit_folds_and_counts(hard_exporters):
    e = hard_exporters({"manykeys": {"max_series": {"manykeys_all_calls_total": 8}}, "syscalls": {}})
    m = scrape_until(e, lambda m: m.value("bpfleet_map_entries", map="manykeys_counts") == 16,
                     "manykeys_counts to fill up")
    limited, all_ = series(m, "manykeys_calls_total"), series(m, "manykeys_all_calls_total")
    assert len(limited) == 5 and len(all_) == 8, (limited, all_)
    assert (("syscall", OVERFLOW),) in limited and (("syscall", OVERFLOW),) in all_
    # Folding adds up: both metrics read the same map in the same snapshot.
    assert sum(limited.values()) == sum(all_.values())
    lbl = dict(program="manykeys", metric="manykeys_calls_total")
    assert m.value("bpfleet_series_limit", **lbl) == 5
    assert m.value("bpfleet_series_overflow", **lbl) == 16 - 4
    assert m.value("bpfleet_series_dropped_total", **lbl) >= 12
    lbl_all = dict(program="manykeys", metric="manykeys_all_calls_total")
    assert m.value("bpfleet_series_limit", **lbl_all) == 8
    assert m.value("bpfleet_series_overflow", **lbl_all) == 16 - 7
    assert m.value("bpfleet_series_limit", program="syscalls", metric="syscalls_total") == 10_000
    assert m.value("bpfleet_series_overflow", program="syscalls", metric="syscalls_total") == 0
    # The map is full, and the program says how many events it could not count.
    assert m.value("bpfleet_map_fill_ratio", program="manykeys", map="manykeys_counts") == 1.0
    assert m.value("manykeys_map_full_total") > 0
    promtool_check(m.text)


def promtool_check(text: str) -> None:
    """promtool's parser and linter accept the exposition: exit 0 (1 is a parse error, 3 a lint
    problem), with its output shown when it does not."""
    assert PROMTOOL, "promtool not found: scripts/setup.sh installs it with the Debian package prometheus"
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"promtool check metrics exited {r.returncode}:\n{r.stdout}{r.stderr}"


def test_config_reload_changes_limits_in_place(hard_exporters):
    e = hard_exporters({"manykeys": {}})
    scrape_until(e, lambda m: m.value("bpfleet_map_entries", map="manykeys_counts") == 16, "a full map")
    before = e.program("manykeys")
    e.write_config({"manykeys": {"max_series": 3}})
    code, body = e.admin("POST", "/reload")
    assert code == 200, body
    m = e.metrics()
    assert len(series(m, "manykeys_calls_total")) == 3
    assert len(series(m, "manykeys_all_calls_total")) == 3
    assert m.value("bpfleet_series_limit", program="manykeys", metric="manykeys_calls_total") == 3
    after = e.program("manykeys")
    assert after["last_change"] == before["last_change"], "the program was not reloaded"
    # A metric the program does not have is a config mistake, reported with file and field.
    e.write_config({"manykeys": {"max_series": {"nope_total": 3}}})
    code, body = e.admin("POST", "/reload")
    assert code == 422, body
    err = body["errors"]["manykeys"]
    assert f"{e.config_path}: programs.manykeys.max_series.nope_total: manykeys@1.0.0 has no metric" in err, err
    assert e.program("manykeys")["state"] == "attached"


def test_overflow_series_in_protobuf_exposition(hard_exporters):
    """Scrapers asking for protobuf (native histograms) get the same folded metric."""
    import urllib.request
    e = hard_exporters({"manykeys": {}})
    scrape_until(e, lambda m: m.value("bpfleet_map_entries", map="manykeys_counts") == 16, "a full map")
    req = urllib.request.Request(f"http://{e.listen}/metrics", headers={
        "Accept": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        assert "protobuf" in r.headers["Content-Type"]
    assert b"manykeys_calls_total" in body and OVERFLOW.encode() in body
