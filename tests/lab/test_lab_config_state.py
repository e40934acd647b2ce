"""Lab config validation and the state file, without root."""
from __future__ import annotations

import json
import os
import time

import pytest

from orchestrator.lab import LabConfig, LabError
from orchestrator.lab.plan import plan_hosts
from orchestrator.lab.state import HostRecord, LabState, load, save


@pytest.mark.parametrize("kw,msg", [
    ({"prefix": "Bad"}, "lowercase"),
    ({"prefix": "muchtoolong"}, "1-8"),
    ({"subnet": "8.8.8.0/24"}, "private IPv4"),
    ({"subnet": "10.0.0.0/30"}, "/28 or larger"),
    ({"subnet": "nonsense"}, "lab subnet"),
    ({"port_base": 80}, "1024..65000"),
    ({"state_dir": "/var/lib/bpfleet/lab"}, "mounts its own copy"),
    ({"vm_kernels": "bookworm,sid"}, "expected a comma-separated list of bookworm, backports"),
    ({"vm_kernels": ()}, "lab VM kernels"),
])
def test_config_rejects(kw, msg):
    with pytest.raises(LabError, match=msg):
        LabConfig(**kw)


def test_config_from_env(monkeypatch):
    monkeypatch.delenv("BPFLEET_LAB_DIR", raising=False)
    monkeypatch.setenv("BPFLEET_LAB_PREFIX", "envp")
    monkeypatch.setenv("BPFLEET_LAB_PORT_BASE", "43000")
    monkeypatch.setenv("BPFLEET_LAB_SUBNET", "10.99.0.0/24")
    cfg = LabConfig.from_env(subnet="10.98.0.0/24", state_dir=None)
    assert (cfg.prefix, cfg.port_base, cfg.subnet) == ("envp", 43000, "10.98.0.0/24")
    assert str(cfg.state_dir) == "/var/lib/bpfleet-lab"
    assert cfg.vm_kernels == ("bookworm",)
    monkeypatch.setenv("BPFLEET_LAB_KERNELS", "bookworm, backports")
    cfg = LabConfig.from_env()
    assert cfg.vm_kernels == ("bookworm", "backports")
    assert [cfg.vm_kernel(i) for i in (1, 2, 3)] == ["bookworm", "backports", "bookworm"]
    monkeypatch.setenv("BPFLEET_LAB_PORT_BASE", "x")
    with pytest.raises(LabError, match="not an integer"):
        LabConfig.from_env()


def test_state_round_trip(tmp_path):
    cfg = LabConfig(state_dir=tmp_path / "lab", prefix="rt", vm_kernels="backports")
    st = LabState(config=cfg, bridge=cfg.bridge, created_dirs=["/etc/bpfleet"],
                  image={"key": "abc", "kernel_release": "6.1.0-50-amd64"})
    for h in plan_hosts(cfg, 2, 1):
        st.hosts[h.name] = HostRecord(h, pid=100 + h.index, kernel="k")
    save(st, cfg.state_file)
    back = load(cfg.state_file)
    assert back.to_json() == st.to_json()
    assert back.config.vm_kernels == ("backports",)
    assert [r.host.name for r in back.of_kind("netns")] == ["rt-ns1", "rt-ns2"]
    assert back.of_kind("vm")[0].host.exporter_fwd_port == 42301
    assert not list(cfg.state_dir.glob("*.tmp")), "saved atomically through a temporary file"


def test_state_missing_and_unreadable(tmp_path):
    assert load(tmp_path / "none.json") is None
    bad = tmp_path / "state.json"
    bad.write_text(json.dumps({"format": 99}))
    with pytest.raises(LabError, match="unreadable lab state"):
        load(bad)


def test_missing_tools_name_their_debian_packages(monkeypatch):
    from orchestrator.lab import system
    monkeypatch.setitem(system.TOOL_PACKAGES, "/nonexistent/lab-tool", "lab-tool-pkg")
    with pytest.raises(LabError, match=r"missing Debian packages: lab-tool-pkg \(apt-get install"):
        system.require_tools(["/nonexistent/lab-tool", "sh"])


def test_cli_status_without_a_lab_and_bad_counts(tmp_path, capsys):
    from bpfleet.cli import main
    assert main(["lab", "status", "--state-dir", str(tmp_path / "none")]) == 3
    assert "no lab is up" in capsys.readouterr().out
    assert main(["lab", "status", "--json", "--state-dir", str(tmp_path / "none")]) == 3
    assert json.loads(capsys.readouterr().out) == {"up": False, "state_dir": str(tmp_path / "none"),
                                                   "hosts": []}
    assert main(["lab", "up", "2", "--vms", "3", "--state-dir", str(tmp_path / "none")]) == 1
    assert "--vms 3: must be between 0 and the total host count 2" in capsys.readouterr().err


def test_the_lab_shell_runs_names_and_logs_commands(tmp_path):
    from orchestrator.lab import system
    with pytest.raises(LabError, match=r"^thing: exit 3: oops$"):
        system.run("sh", "-c", "echo oops >&2; exit 3", what="thing")
    with pytest.raises(LabError, match=r"^sh -c sleep 5: no answer after 0 s$"):
        system.run("sh", "-c", "sleep 5", timeout=0.2)
    assert system.run("sh", "-c", "cat", input=b"\x00bytes", text=False).stdout == b"\x00bytes"
    assert system.run("sh", "-c", "cat").stdout == ""         # stdin is /dev/null, not the terminal
    log = tmp_path / "build.log"
    p = system.run_logged("sh", "-c", "echo out; echo err >&2; exit 2", log=log, timeout=30)
    assert (p.returncode, p.stdout) == (2, "out\n")
    assert log.read_text() == "\n$ sh -c echo out; echo err >&2; exit 2\nerr\nout\n"
    pid = system.spawn(["sh", "-c", "echo started; exec sleep 30"], tmp_path / "daemon.log")
    try:
        deadline = time.monotonic() + 30         # a sync point, not a timing assertion
        while (tmp_path / "daemon.log").read_text() != "started\n" and time.monotonic() < deadline:
            time.sleep(0.02)
        while system.pid_cmdline(pid)[:1] != ["sleep"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert system.pid_alive(pid) and system.pid_cmdline(pid) == ["sleep", "30"]
        assert os.getsid(pid) == pid             # a session of its own: the lab's daemons outlive us
    finally:
        assert system.stop_pids([pid]) == []
    assert (tmp_path / "daemon.log").read_text() == "started\n"


def test_ssh_failures_name_the_host_and_the_command(tmp_path):
    import socket
    from orchestrator.lab.plan import Host
    from orchestrator.lab.ssh import ssh
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]      # closed once we leave: nothing listens there
    host = Host(name="h1", kind="netns", index=1, address="127.0.0.1", ssh_port=port, exporter_url="")
    want = rf"^ssh h1 \(127\.0\.0\.1:{port}\) 'uname -r': exit 255: (?s:.*)Connection refused$"
    with pytest.raises(LabError, match=want):
        ssh(host, tmp_path / "no-key", "uname -r", timeout=30)
    assert ssh(host, tmp_path / "no-key", "uname -r", timeout=30, check=False).returncode == 255
