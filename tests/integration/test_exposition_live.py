"""The live /metrics is valid exposition: promtool (Prometheus's Go parser and linter) and
prometheus_client's parser accept it, also while processes with hostile names run, and those
names come back out of the parser exactly as the kernel holds them."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from harness import BUILTINS, LOADABLE, Metrics, deadline_poll

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# comm is at most 15 bytes. Quote+backslash, a newline, and bytes that are not UTF-8.
HOSTILE = {
    "quote-backslash": b'a"b\\',
    "newline": b"nl\nname",
    "not-utf8": b"bad\xff\xfeutf8",
}


@pytest.fixture(scope="module")
def exporter(module_exporters):
    progs = {name: {} for name in BUILTINS}
    progs["syscalls"] = {"knobs": {"by_process": True}}
    e = module_exporters(progs)
    e.wait_attached(*LOADABLE)
    return e


def promtool_check(text: str) -> None:
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, (f"promtool check metrics exited {r.returncode}\n"
                               f"stdout:\n{r.stdout.decode(errors='replace')}\n"
                               f"stderr:\n{r.stderr.decode(errors='replace')}")


def test_live_metrics_pass_promtool_and_parser(exporter):
    code, ctype, body = exporter.get("/metrics")
    assert code == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    text = body.decode("utf-8")
    promtool_check(text)
    m = Metrics(text)
    names = {f.name for f in m.families}
    for fam in ("syscalls", "syscalls_by_process", "exec", "tcp_connections", "runq_latency_seconds",
                "bio_latency_seconds", "bpfleet_program_attached"):
        assert fam in names, f"family {fam} missing from the live scrape"


@pytest.fixture
def hostile_children(tmp_path):
    """Processes whose comm is each hostile name: exec a symlink to /bin/sleep named that way
    (the kernel sets comm from the basename of the path passed to execve)."""
    bindir = os.fsencode(tmp_path / "bin")
    os.mkdir(bindir)
    procs = {}
    try:
        for key, name in HOSTILE.items():
            link = os.path.join(bindir, name)
            os.symlink(b"/bin/sleep", link)
            procs[key] = subprocess.Popen([link, "60"])
        for key, p in procs.items():
            def comm_set(p=p, key=key):
                with open(f"/proc/{p.pid}/comm", "rb") as f:
                    return f.read()[:-1] == HOSTILE[key]  # comm ends in "\n"
            deadline_poll(comm_set, 5, what=f"comm of the {key} child")
        yield procs
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


@pytest.mark.parametrize("key", list(HOSTILE))
def test_hostile_comm_round_trips(exporter, hostile_children, key):
    expected = HOSTILE[key].decode("utf-8", errors="replace")   # the documented string decoding

    def seen():
        text = exporter.scrape()
        m = Metrics(text)
        ok = m.has("exec_total", comm=expected) and m.has("syscalls_by_process_total", comm=expected)
        return (text, m) if ok else None
    try:
        text, m = deadline_poll(seen, 10, what=f"series with comm={expected!r}")
    except AssertionError:
        m = exporter.metrics()
        raise AssertionError(f"comm {expected!r} not found; exec_total comms: "
                             f"{sorted(m.label_values('exec_total', 'comm'))}") from None
    promtool_check(text)
    # Exactly that label value, on both metrics; the exec happened once.
    assert m.value("exec_total", comm=expected) >= 1
    assert expected in m.label_values("exec_total", "comm")
    assert expected in m.label_values("syscalls_by_process_total", "comm")
    # and the name did not leak into other labels or split lines
    for s in m.find("syscalls_by_process_total", comm=expected):
        assert set(s.labels) == {"comm", "syscall"}
        assert s.labels["syscall"].isidentifier() or s.labels["syscall"].isdigit()
