"""Signed artifacts through the real fleet path: `bpfleet fleet install --trusted-key` puts the
public key on every host, `bpfleet rollout --trusted-key` ships a signed version through real
Ansible to netns lab hosts, and a tampered artifact (object and index.json rewritten so every
digest matches) is refused on the host before it is loaded, with the old version left running.

The control machine checks signatures too when given --trusted-key; the host-side refusal is
proven separately by rollouts in which the control machine's check is absent (no --trusted-key)
or fooled (a key file of the same name that the hosts never received)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPORT, ROOT, artifact_digest, build, run_bpfleet, tiny_program
from test_signing_live import loaded_program_names, tamper_consistently

LAB = {"BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-sig", "BPFLEET_LAB_PREFIX": "bpflsig",
       "BPFLEET_LAB_SUBNET": "10.213.240.0/24", "BPFLEET_LAB_PORT_BASE": "43300"}
NAME = "sig_fleet"          # BPF programs sig_fleet_prog (genuine) and sig_fleet_evil (attacker's)
HOSTS = 2
GOOD, TAMPERED, RESIGNED = "1.1.0", "1.2.0", "1.3.0"


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfleet.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **LAB}, cwd=ROOT, stdin=subprocess.DEVNULL)


def ssh(host: dict, command: str) -> str:
    p = subprocess.run(host["ssh"].split() + ["--", command], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"ssh {host['name']} {command!r}: exit {p.returncode}: {p.stderr}"
    return p.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """2 netns hosts running sig_fleet@1.0.0 (signed), installed with the release key; the
    registry also holds a signed 1.1.0 and two tampered versions. Down at the end, always."""
    tmp = tmp_path_factory.mktemp("sigfleet")
    registry, keys, attacker = tmp / "registry", tmp / "keys", tmp / "attacker"
    build(registry, *(tiny_program(tmp / "src" / v, NAME, v) for v in ("1.0.0", GOOD, TAMPERED, RESIGNED)))
    # the attacker's key pair has the release key's file name: see test_host_trusts_only_installed_key
    for d in (keys, attacker):
        run_bpfleet("programs", "keygen", str(d), check=True)
    run_bpfleet("programs", "sign", "--registry", str(registry), "--key", str(keys / "release.key"),
                *(f"{NAME}@{v}" for v in ("1.0.0", GOOD, TAMPERED, RESIGNED)), check=True)
    tamper_consistently(registry, NAME, TAMPERED, tmp / "t1")       # the release signature stays
    tamper_consistently(registry, NAME, RESIGNED, tmp / "t2")
    run_bpfleet("programs", "sign", "--registry", str(registry), "--key", str(attacker / "release.key"),
                f"{NAME}@{RESIGNED}", check=True)
    cli("lab", "down")
    try:
        t = time.monotonic()
        up = cli("lab", "up", str(HOSTS), "--json")
        assert up.returncode == 0, up.stdout + up.stderr
        lab = json.loads(up.stdout)
        env = {"inventory": lab["inventory"], "registry": str(registry), "journal": str(tmp / "journal.db"),
               "keys": keys, "attacker": attacker, "hosts": {h["name"]: h for h in lab["hosts"]}}
        p = cli("fleet", "install", "-i", env["inventory"], "--registry", env["registry"], "--journal",
                env["journal"], "--trusted-key", str(keys / "release.pub"), "--program", f"{NAME}@1.0.0", "--json")
        assert p.returncode == 0, f"fleet install failed:\n{p.stdout}\n{p.stderr}"
        rows = json.loads(p.stdout)
        assert sorted(r["host"] for r in rows) == sorted(env["hosts"]), rows
        assert all(r["ok"] and r["programs"].get(NAME) == "1.0.0" for r in rows), rows
        REPORT.append(f"signing fleet: lab up {HOSTS} + fleet install: {time.monotonic() - t:.1f} s")
        yield env
    finally:
        down = cli("lab", "down")
        assert down.returncode == 0, down.stdout + down.stderr


def rollout(lab, version: str, *args: str) -> tuple[int, list[dict], subprocess.CompletedProcess]:
    """`bpfleet rollout sig_fleet@VERSION ... --json` -> (exit code, its JSON lines, the process)."""
    t = time.monotonic()
    p = cli("rollout", f"{NAME}@{version}", "-i", lab["inventory"], "--registry", lab["registry"],
            "--journal", lab["journal"], "--steps", "100%", "--bake", "1", "--json", *args)
    events = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    REPORT.append(f"signing fleet: rollout {NAME}@{version} {' '.join(args)}: exit {p.returncode} "
                  f"in {time.monotonic() - t:.1f} s")
    return p.returncode, events, p


def running(lab) -> dict[str, tuple]:
    """host -> (version, state, digest) of sig_fleet, as each host's exporter reports it."""
    p = cli("status", "-i", lab["inventory"], "--journal", lab["journal"], "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    return {r["host"]: tuple((r["programs"].get(NAME) or {}).get(k) for k in ("version", "state", "digest"))
            for r in json.loads(p.stdout)}


def assert_untouched(lab, before: dict) -> None:
    assert running(lab) == before, "the tampered version changed what the hosts run"
    loaded = loaded_program_names()     # netns hosts share this kernel: one look covers all
    assert f"{NAME}_evil" not in loaded, "the attacker's program was loaded"
    assert f"{NAME}_prog" in loaded


def test_signed_version_rolls_out_with_the_installed_key(lab):
    for host in lab["hosts"].values():      # the key fleet install put there, and the config using it
        assert ssh(host, "cat /etc/bpfleet/keys/release.pub") == (lab["keys"] / "release.pub").read_text()
        assert 'trusted_keys = ["/etc/bpfleet/keys/release.pub"]' in ssh(host, "cat /etc/bpfleet/exporter.toml")
    code, events, p = rollout(lab, GOOD, "--trusted-key", str(lab["keys"] / "release.pub"))
    assert code == 0 and events[-1]["result"] == "succeeded", p.stdout[-3000:] + p.stderr[-3000:]
    digest = artifact_digest(Path(lab["registry"]), NAME, GOOD)
    assert running(lab) == {h: (GOOD, "attached", digest) for h in lab["hosts"]}


def test_control_machine_refuses_tampered_artifact_before_any_host(lab):
    before = running(lab)
    code, events, p = rollout(lab, TAMPERED, "--trusted-key", str(lab["keys"] / "release.pub"))
    assert code == 2 and events == [], p.stdout + p.stderr
    assert "signature does not match" in p.stderr and f"{NAME}/{TAMPERED}" in p.stderr, p.stderr
    assert_untouched(lab, before)


def _refused_in_preflight(events: list[dict], p, version: str) -> None:
    """The rollout failed at the preflight, and the reason came from the host's registry."""
    assert events and events[-1]["kind"] == "result", p.stdout[-3000:] + p.stderr[-3000:]
    result = events[-1]
    assert (p.returncode, result["result"]) == (1, "failed"), result
    text = json.dumps(events)
    assert "signature does not match" in text, text[-4000:]
    # the artifact as staged in the host's registry: the host made the decision
    assert f"/var/lib/bpfleet/registry/{NAME}/{version}" in text, text[-4000:]
    assert not any(e.get("kind") in ("wave_started", "host_upgraded") for e in events), events


def test_host_refuses_when_control_machine_does_not_check(lab):
    """No --trusted-key: the control machine checks digests only (which match); the host's
    own trusted_keys (from fleet install) must refuse it before anything loads."""
    before = running(lab)
    code, events, p = rollout(lab, TAMPERED)
    _refused_in_preflight(events, p, TAMPERED)
    assert_untouched(lab, before)


def test_host_trusts_only_installed_key(lab):
    """The control machine is handed the attacker's key under the release key's file name: its
    own check passes (the artifact is validly signed by that key), the hosts check against the
    key fleet install gave them and refuse."""
    before = running(lab)
    code, events, p = rollout(lab, RESIGNED, "--trusted-key", str(lab["attacker"] / "release.pub"))
    _refused_in_preflight(events, p, RESIGNED)
    assert_untouched(lab, before)
