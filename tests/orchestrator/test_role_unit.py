"""The bpfleet_exporter role's systemd unit, rendered by Ansible itself, carries the same
least-privilege sandbox as packaging/bpfleet-exporter.service (tests/hardening checks that one
against a running exporter) and passes systemd's own verification."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "playbooks" / "roles" / "bpfleet_exporter"
PACKAGED = ROOT / "packaging" / "bpfleet-exporter.service"
# Lines that depend on where and how the role installs; everything else must match.
INSTALL_SPECIFIC = {"ExecStart", "Restart", "RestartSec", "Environment", "After", "Documentation"}


def settings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def render(tmp_path: Path, **extravars) -> str:
    """Render the role's unit template with the role's defaults through `ansible -m template`."""
    ansible = Path(sys.executable).with_name("ansible")
    if not ansible.exists():
        ansible = Path(shutil.which("ansible") or "ansible")
    dest = tmp_path / "bpfleet-exporter.service"
    p = subprocess.run(
        [str(ansible), "localhost", "-i", "localhost,", "-c", "local", "-m", "ansible.builtin.template",
         "-a", f"src={ROLE / 'templates' / 'bpfleet-exporter.service.j2'} dest={dest} mode=0644",
         "-e", f"@{ROLE / 'defaults' / 'main.yml'}", "-e", json.dumps(extravars)],
        capture_output=True, text=True, timeout=120,
        env={"PATH": f"{ansible.parent}:/usr/sbin:/usr/bin:/sbin:/bin", "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"})
    assert p.returncode == 0, p.stdout + p.stderr
    return dest.read_text()


def test_role_unit_has_the_packaged_sandbox(tmp_path):
    unit = settings(render(tmp_path))
    packaged = settings(PACKAGED.read_text())
    want = {k: v for k, v in packaged.items() if k not in INSTALL_SPECIFIC}
    got = {k: unit.get(k) for k in want}
    assert got == want
    assert unit["ExecStart"] == "/opt/bpfleet/venv/bin/bpfleet exporter --config /etc/bpfleet/exporter.toml"
    assert unit["Restart"] == "on-failure"


def test_role_unit_follows_the_role_variables(tmp_path):
    text = render(tmp_path, bpfleet_exporter_environment={"BPFLEET_LOG": "DEBUG"},
                  bpfleet_exporter_run_dir="/run/bpfl-x", bpfleet_exporter_venv="/srv/bpfleet/venv")
    unit = settings(text)
    assert unit["Environment"] == '"BPFLEET_LOG=DEBUG"'
    assert unit["RuntimeDirectory"] == "bpfl-x"
    assert unit["ExecStart"].startswith("/srv/bpfleet/venv/bin/bpfleet exporter")


def test_role_unit_passes_systemd_verification(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: scripts/setup.sh installs systemd")
    text = render(tmp_path)
    unit = tmp_path / "verify" / "bpfleet-exporter.service"
    unit.parent.mkdir()
    # systemd-analyze verify wants ExecStart's binary to exist
    bpfleet = ROOT / ".venv" / "bin" / "bpfleet"     # a worktree may use another checkout's venv
    bpfleet = bpfleet if bpfleet.exists() else Path(sys.executable).parent / "bpfleet"
    unit.write_text(text.replace("/opt/bpfleet/venv/bin/bpfleet", str(bpfleet)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=30", str(unit)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
