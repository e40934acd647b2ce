"""Least privilege (docs/security.md): the exporter keeps only CAP_BPF and CAP_PERFMON once its
programs are attached, and still reloads and upgrades; it runs under the systemd unit's sandbox
(capability bounding set, MemoryDenyWriteExecute, the system call allow list - emulated here,
since this machine has no systemd as PID 1); the admin API refuses callers that are not root;
/metrics and /status expose no secret; the listen address defaults to loopback."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from exporter import privileges
from exporter.config import DEFAULT_LISTEN, parse, parse_listen
from harness import ROOT, deadline_poll

UNIT = ROOT / "packaging" / "bpfleet-exporter.service"
SANDBOX = Path(__file__).resolve().parent / "sandbox_exec.py"
KEPT = {"cap_bpf", "cap_perfmon"}


def unit_settings() -> dict[str, str]:
    out = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def thread_caps(pid: int) -> dict[int, dict]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        out[int(tid)] = privileges.current(f"/proc/{pid}/task/{tid}/status")
    return out


# ---------------------------------------------------------------- the unit file

def test_unit_file_verifies_and_grants_only_what_is_needed(tmp_path):
    s = unit_settings()
    caps = set(s["CapabilityBoundingSet"].lower().split())
    assert caps == {"cap_bpf", "cap_perfmon", "cap_net_admin", "cap_setpcap"}, caps
    # No CAP_SYS_RESOURCE: kernels before 5.11 get LimitMEMLOCK=infinity instead (checked below).
    assert "cap_sys_admin" not in caps and "cap_sys_resource" not in caps
    for key, want in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                      "PrivateTmp": "yes", "MemoryDenyWriteExecute": "yes", "LockPersonality": "yes",
                      "SystemCallArchitectures": "native", "ReadWritePaths": "/sys/fs/bpf",
                      "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "AmbientCapabilities": "",
                      "RuntimeDirectoryMode": "0700", "LimitMEMLOCK": "infinity"}.items():
        assert s.get(key) == want, f"{key}={s.get(key)!r}, want {want!r}"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("no systemd-analyze")
    unit = tmp_path / "bpfleet-exporter.service"
    bpfleet = ROOT / ".venv" / "bin" / "bpfleet"     # a worktree may use another checkout's venv
    bpfleet = bpfleet if bpfleet.exists() else Path(sys.executable).parent / "bpfleet"
    unit.write_text(UNIT.read_text().replace("/opt/bpfleet/.venv/bin/bpfleet", str(bpfleet)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(unit)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


# ---------------------------------------------------------------- dropping capabilities

def test_capabilities_dropped_after_attach_on_every_thread(hard_exporters):
    e = hard_exporters({"syscalls": {}, "exec": {}})
    st = e.status()
    assert set(st["capabilities"]["kept"]) == KEPT, st["capabilities"]
    assert st["capabilities"]["bounding_set"] is True
    assert "cap_sys_admin" in st["capabilities"]["dropped"]
    for tid, caps in thread_caps(e.proc.pid).items():
        for which in ("effective", "permitted", "bounding"):
            assert set(caps[which]) == KEPT, (tid, which, caps)
        assert caps["inheritable"] == [] and caps["ambient"] == [], (tid, caps)
    # What remains is enough for everything after start: upgrade in place, reload, unload.
    code, body = e.admin("PUT", "/programs/syscalls", {"knobs": {"by_process": True}})
    assert code == 200, body
    e.write_config({"syscalls": {}, "exec": {}, "runqlat": {}})
    code, body = e.admin("POST", "/reload")
    assert code == 200, body
    e.wait_attached("syscalls", "exec", "runqlat")
    code, body = e.admin("DELETE", "/programs/exec")
    assert code == 200, body


@pytest.mark.parametrize("types, kept", [
    ({"tracepoint", "raw_tracepoint", "tracing", "perf_event"}, KEPT),
    ({"tracepoint", "xdp"}, KEPT | {"cap_net_admin"}),
    ({"cgroup_skb"}, KEPT | {"cap_net_admin"}),
    ({"sched_cls"}, KEPT | {"cap_net_admin"}),
    (set(), KEPT),
])
def test_cap_net_admin_is_kept_only_for_networking_programs(types, kept):
    assert privileges.keep_for(types) == kept


def test_an_xdp_program_fails_alone_and_cap_net_admin_goes(hard_exporters):
    """An XDP program loads (the verifier accepts it) but cannot attach without an interface
    to attach to, which its config does not name. The error says so and how to name one, the
    other programs run, and since no networking program runs (and the config accepts no
    mitigations), CAP_NET_ADMIN is dropped with the rest."""
    e = hard_exporters({"xdpcount": {}, "syscalls": {}})
    e.wait_attached("syscalls")
    p = e.program("xdpcount")
    assert p["state"] == "failed", p
    assert "could not attach" in p["error"] and "needs interfaces to attach to" in p["error"], p["error"]
    assert "attach = { interfaces = [" in p["error"], p["error"]
    caps = e.status()["capabilities"]
    assert set(caps["kept"]) == KEPT and "cap_net_admin" in caps["dropped"], caps


def sandboxed(e, *opts):
    """Start `e` through sandbox_exec.py with these options."""
    inner = e.command

    def command(*more):
        return [sys.executable, str(SANDBOX), *opts, "--", *inner(*more)]
    e.command = command
    return e.start()


def test_runs_under_the_units_sandbox(hard_exporters):
    """The unit's capability bounding set, MemoryDenyWriteExecute (libffi's callbacks for the
    ring buffer and libbpf's log must not need writable executable memory) and system call
    allow list, applied to a real exporter: it loads, serves, consumes a ring buffer,
    upgrades, reloads and shuts down clean."""
    s = unit_settings()
    caps = ",".join(c.lower().removeprefix("cap_") for c in s["CapabilityBoundingSet"].split())
    e = hard_exporters({"syscalls": {}, "exec": {}}, start=False)
    sandboxed(e, "--caps", caps, "--mdwe", "--syscalls", s["SystemCallFilter"])
    st = e.status()
    assert set(st["capabilities"]["kept"]) == KEPT, st["capabilities"]
    subprocess.run(["/bin/true"], check=True)
    deadline_poll(lambda: e.metrics().value("bpfleet_ringbuf_events_total", program="exec") > 0, 10,
                  what="ring buffer events consumed under MemoryDenyWriteExecute")
    code, body = e.admin("PUT", "/programs/syscalls", {"knobs": {"by_process": True}})
    assert code == 200, body
    e.sighup()
    deadline_poll(lambda: e.program("syscalls")["knobs"] == {}, 10, what="SIGHUP reload applied")
    refused = [ln for ln in e.stderr_path.read_text().splitlines()
               if "EPERM" in ln and "bpf_enable_stats" not in ln]   # that one is expected
    assert not refused, refused


def test_bpf_stats_without_cap_sys_admin(hard_exporters):
    """BPF_ENABLE_STATS needs CAP_SYS_ADMIN, which the unit does not grant: the exporter then
    relies on kernel.bpf_stats_enabled (the unit's ExecStartPre sets it), and says so in
    /status when it is off."""
    sysctl = Path("/proc/sys/kernel/bpf_stats_enabled")
    saved = sysctl.read_text().strip()
    try:
        sysctl.write_text("0")
        e = hard_exporters({"syscalls": {}, "costly": {}}, start=False)
        sandboxed(e, "--caps", "bpf,perfmon")
        deadline_poll(lambda: (e.program("costly")["budget"] or {}).get("note"), 15,
                      what="the budget note")
        note = e.program("costly")["budget"]["note"]
        assert "bpf_stats are off" in note and "kernel.bpf_stats_enabled=1" in note, note
        e.stop()
        sysctl.write_text("1")
        e2 = hard_exporters({"syscalls": {}}, start=False)
        sandboxed(e2, "--caps", "bpf,perfmon")
        deadline_poll(lambda: e2.metrics().value("bpfleet_program_run_count_total", program="syscalls") > 0,
                      10, what="run counts through the sysctl")
        assert "bpf_stats on through kernel.bpf_stats_enabled" in e2.stderr_path.read_text()
    finally:
        sysctl.write_text(saved)


def test_refuses_to_start_without_cap_bpf(hard_registry, tmp_path):
    from harness import Exporter
    e = Exporter(tmp_path, hard_registry, {"syscalls": {}})
    r = subprocess.run([sys.executable, str(SANDBOX), "--caps", "perfmon", "--", *e.command()],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "missing capabilities CAP_BPF" in r.stderr and "docs/security.md" in r.stderr, r.stderr
    assert not os.path.exists(e.pin_root)


# ---------------------------------------------------------------- admin API, secrets, listen

def test_admin_socket_refuses_non_root(hard_exporters):
    e = hard_exporters({"syscalls": {}})
    st = os.stat(e.admin_socket)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    assert os.stat(os.path.dirname(e.admin_socket)).st_mode & 0o077 == 0
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\n"
             "try:\n    s.connect(sys.argv[1]); s.sendall(b'GET /status HTTP/1.0\\r\\n\\r\\n')\n"
             "    print('CONNECTED', s.recv(100))\nexcept OSError as e:\n    print('REFUSED', e.errno)\n")
    for who in (["--reuid=65534", "--regid=65534", "--clear-groups"],
                ["--reuid=65534", "--regid=0", "--clear-groups"]):          # even in group root
        r = subprocess.run(["setpriv", *who, sys.executable, "-c", probe, e.admin_socket],
                           capture_output=True, text=True, timeout=30)
        assert r.stdout.startswith("REFUSED 13"), (who, r.stdout, r.stderr)   # EACCES
    code, _ = e.admin("GET", "/status")      # root still gets in
    assert code == 200


SECRETS = ("s3cret-bearer-token", "pa55w0rd", "env-api-key-123")


def test_metrics_and_status_expose_no_secrets(hard_exporters, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={SECRETS[2]}")
    port = _closed_port()
    e = hard_exporters({"syscalls": {}}, extra_config=(
        f'[otlp]\nenabled = true\nendpoint = "http://collector:{SECRETS[1]}@127.0.0.1:{port}"\n'
        f'headers = {{ authorization = "Bearer {SECRETS[0]}" }}\ninterval_seconds = 1\n'))
    code, _ctype, public = e.get("/status")
    texts = {"/metrics": e.scrape(), "/status": public.decode(),
             "admin /status": json.dumps(e.status()), "/": e.get("/")[2].decode()}
    for where, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {where}"
    otlp = json.loads(public)["otlp"]
    assert otlp["metrics"]["endpoint"].startswith("http://<redacted>@127.0.0.1:")
    assert otlp["metrics"]["headers"] == ["authorization", "x-api-key"]   # names only


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_listen_defaults_to_loopback(hard_exporters):
    assert DEFAULT_LISTEN.startswith("127.0.0.1:")
    assert parse("", "c.toml").listen == DEFAULT_LISTEN
    assert parse_listen(":9436", "x") == ("127.0.0.1", 9436), "an empty host means loopback"
    # A real exporter told only a port binds to loopback, not to every address.
    e = hard_exporters({"syscalls": {}}, start=False)
    port = e.port
    e.listen = f":{port}"
    text = e.config_path.read_text()
    e.config_path.write_text(re.sub(r'(?m)^listen = .*$', f'listen = ":{port}"', text))
    e.listen = f"127.0.0.1:{port}"
    e.start()
    bound = _listening(port)
    assert bound == {"127.0.0.1"}, bound
    assert e.ready["listen"] == f"127.0.0.1:{port}"


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (from /proc/net/tcp{,6})."""
    out = set()
    for path, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(path).read_text().splitlines()[1:]:
            f = line.split()
            addr, p = f[1].split(":")
            if int(p, 16) == port and f[3] == "0A":   # LISTEN
                raw = bytes.fromhex(addr)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                out.add(socket.inet_ntop(fam, raw))
    return out
