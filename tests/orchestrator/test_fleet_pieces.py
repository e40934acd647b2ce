"""The pure pieces of the Ansible fleet, without hosts: the host modules' config editing and
artifact checks, artifact archives, reports turned into observations and plans."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from hostmodule_kit import host_module as module

from core import registry as reg
from orchestrator import packaging
from orchestrator.ansible.fleet import observation
from orchestrator.engine.fleet import Artifact
from orchestrator.ansible.runner import HostResult, RunResult
from bpfleet.commands.fleet.tables import plan


CONFIG = """# BEGIN bpfleet exporter settings (bpfleet_exporter role)
listen = "0.0.0.0:9436"
# END bpfleet exporter settings (bpfleet_exporter role)

[programs.syscalls]
version = "1.0.0"
knobs = { by_process = true }

[programs.syscalls.extra]
x = 1
[programs.tcp]
version = "1.0.0"
"""


def test_config_edits_touch_only_the_programs_own_entry(tmp_path):
    m = module("bpfleet_program")
    path = tmp_path / "exporter.toml"
    path.write_text(CONFIG)
    assert m.write_config(str(path), "syscalls", "1.1.0", {"by_process": True, "target_pid": 7})
    text = path.read_text()
    assert text.startswith("# BEGIN bpfleet exporter settings") and "[programs.tcp]" in text
    assert text.count("[programs.syscalls]") == 1 and "[programs.syscalls.extra]" not in text
    assert ('# BEGIN bpfleet program syscalls\n[programs.syscalls]\nversion = "1.1.0"\n'
            'knobs = { by_process = true, target_pid = 7 }\n# END bpfleet program syscalls\n') in text
    assert not m.write_config(str(path), "syscalls", "1.1.0", {"by_process": True, "target_pid": 7})
    assert m.write_config(str(path), "syscalls", None, {})
    assert "syscalls" not in path.read_text() and "[programs.tcp]" in path.read_text()
    import tomli
    assert tomli.loads(path.read_text())["programs"] == {"tcp": {"version": "1.0.0"}}


def test_an_entry_keeps_its_place_so_a_rerun_changes_nothing(tmp_path):
    m = module("bpfleet_program")
    path = tmp_path / "exporter.toml"
    for name in ("a", "b"):
        assert m.write_config(str(path), name, "1.0.0", {})
    before = path.read_text()
    assert before.index("[programs.a]") < before.index("[programs.b]")
    assert not m.write_config(str(path), "a", "1.0.0", {})      # not moved behind b
    assert m.write_config(str(path), "a", "1.1.0", {"on": False})
    after = path.read_text()
    assert after.index("[programs.a]") < after.index("[programs.b]")
    assert after == before.replace('version = "1.0.0"\n# END bpfleet program a',
                                   'version = "1.1.0"\nknobs = { on = false }\n# END bpfleet program a')


def _artifact(registry: Path, name="demo", version="1.0.0") -> reg.Artifact:
    d = registry / name / version
    d.mkdir(parents=True)
    (d / f"{name}.bpf.o").write_bytes(b"\x7fELF not really")
    (d / "manifest.toml").write_text(f'name = "{name}"\nversion = "{version}"\n')
    files = reg.file_digests(d)
    (d / "index.json").write_text(json.dumps({"name": name, "version": version,
                                              "digest": reg.digest_of(files), "files": files}))
    return reg.resolve(registry, name, version)


def test_artifact_archive_is_deterministic_and_verifies_on_the_host_side(tmp_path):
    a = _artifact(tmp_path / "registry")
    one = packaging.artifact_archive(tmp_path / "registry", "demo", "1.0.0", tmp_path / "c1")
    two = packaging.artifact_archive(tmp_path / "registry", "demo", "1.0.0", tmp_path / "c2")
    data = Path(one.archive_b64).read_bytes()
    assert one.digest == a.digest and data == Path(two.archive_b64).read_bytes()
    m = module("bpfleet_artifact")
    host = tmp_path / "host"
    host.mkdir()
    m.unpack(io.BytesIO(base64.b64decode(data)), str(host))
    assert sorted(p.name for p in host.iterdir()) == ["demo.bpf.o", "index.json", "manifest.toml"]
    assert m.problems_of(str(host), a.digest) == []
    assert m.problems_of(str(host), "0" * 64) == [f"digest is {a.digest}, the orchestrator pinned {'0' * 64}"]
    (host / "demo.bpf.o").write_bytes(b"tampered")
    bad = m.problems_of(str(host), a.digest)
    assert "files differ from index.json: demo.bpf.o" in bad[0]


def test_report_to_observation():
    rep = {"exporter": {"up": True}, "load1": 1.5, "cpus": 2,
           "program": {"version": "1.1.0", "state": "attached", "error": None,
                       "run_time_ns": 5000, "run_count": 100}}
    o = observation("h", rep)
    assert (o.reachable, o.healthy, o.version, o.state, o.run_time_ns, o.run_count, o.load_per_cpu) == \
        (True, True, "1.1.0", "attached", 5000, 100, 0.75)
    assert not observation("h", None).reachable
    down = observation("h", {"exporter": {"up": False}, "program": None, "load1": 0.1, "cpus": 1})
    assert down.reachable and not down.healthy and down.version is None


def test_plan_groups_by_kernel_build_and_names_failing_hosts():
    def rep(release, build, running="1.0.0", up=True):
        return {"release": release, "build": build, "btf": True, "exporter": {"up": up},
                "program": {"version": running, "state": "attached"} if up else None}
    run = RunResult("x", "successful", 0, {
        "a1": HostResult("a1", report=rep("6.18", "#1")), "a2": HostResult("a2", report=rep("6.18", "#1")),
        "b1": HostResult("b1", report=rep("6.1", "#1 Debian")),
        "c1": HostResult("c1", ok=False, unreachable=True, message="ssh: connection refused"),
        "d1": HostResult("d1", report=rep("6.18", "#1", up=False))})
    p = plan(Artifact("demo", "1.1.0", "ab" * 32, "/r/demo/1.1.0"), run, ("1", "100%"), None)
    assert [(b["kernel"], b["preflight_host"]) for b in p["kernel_builds"]] == [
        ("6.1 #1 Debian", "b1"), ("6.18 #1", "a1")]
    assert p["waves"][0] == {"index": 0, "kind": "canary", "hosts": ["b1", "a1"]}
    assert sorted(h for w in p["waves"] for h in w["hosts"]) == ["a1", "a2", "b1"]
    assert p["failing"] == ["c1", "d1"]


def test_health_is_compared_within_a_kernel_build():
    from orchestrator.engine.gates import FAIL, PASS, Observation, check_health
    vm_before = Observation("vm", True, True, load_per_cpu=0.80, kernel="6.1")
    big = [Observation(f"ns{i}", True, True, load_per_cpu=0.30, kernel="6.18") for i in range(3)]
    wave = [Observation("vm", True, True, load_per_cpu=0.85, kernel="6.1"),
            Observation("ns0", True, True, load_per_cpu=0.32, kernel="6.18")]
    assert check_health(wave, big + [vm_before]).result == PASS    # the VM against itself
    hot = [Observation("ns0", True, True, load_per_cpu=0.90, kernel="6.18")]
    c = check_health(hot, big + [vm_before])
    assert c.result == FAIL and c.hosts == ("ns0",)


@pytest.mark.parametrize("arg", ["1,10%,50%,100%", "100%", "2,5"])
def test_cli_steps_parse(arg):
    from bpfleet.commands.args import steps
    assert steps(arg) == tuple(arg.split(","))
