"""The host modules (playbooks/library/): `ansible-doc` renders each one, its documented options
are its argument spec, the admin-socket client and the config editing live once in
playbooks/module_utils/, and real Ansible runs the modules (with that shared code) against an
exporter's admin API."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hostmodule_kit import LIBRARY, MODULE_UTILS, FakeExporter, host_module, module_util
from orchestrator.ansible.runner import Timeouts, run_playbook

MODULES = sorted(p.stem for p in LIBRARY.glob("*.py"))
ANSIBLE_DOC = Path(sys.executable).with_name("ansible-doc")


def ansible_doc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ANSIBLE_DOC), "-M", str(LIBRARY), *args], capture_output=True,
                          text=True, timeout=120, env={"PATH": f"{ANSIBLE_DOC.parent}:/usr/bin:/bin",
                                                       "ANSIBLE_NOCOLOR": "1"})


def argument_spec(name: str) -> dict:
    tree = ast.parse((LIBRARY / f"{name}.py").read_text())
    found = [n.value for n in tree.body if isinstance(n, ast.Assign)
             and any(getattr(t, "id", None) == "ARGUMENT_SPEC" for t in n.targets)]
    assert found, f"{name}: no module-level ARGUMENT_SPEC (what DOCUMENTATION is checked against)"
    return ast.literal_eval(found[0])


def test_the_library_is_what_the_playbooks_use():
    assert MODULES == ["bpfleet_artifact", "bpfleet_mitigation", "bpfleet_program"]


@pytest.fixture(scope="module")
def docs() -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """`ansible-doc -M playbooks/library <every module>`, as text and as JSON (one run each)."""
    return ansible_doc(*MODULES), ansible_doc("--json", *MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module(name, docs):
    text, as_json = docs
    for p in docs:
        assert p.returncode == 0 and "[ERROR]" not in p.stderr and "[WARNING]" not in p.stderr, p.stderr
    page = text.stdout.split(f"> MODULE {name} ")[1].split("> MODULE ")[0]
    assert "EXAMPLES" in page and "RETURN VALUES" in page
    doc = json.loads(as_json.stdout)[name]
    assert doc["doc"]["module"] == name and doc["doc"]["short_description"] and doc["return"]
    examples = yaml.safe_load(doc["examples"])
    assert examples and all(name in task for task in examples), "every example runs this module"
    documented = {k: {"type": o.get("type", "str"), "default": o.get("default"), "choices": o.get("choices"),
                      "required": bool(o.get("required"))} for k, o in doc["doc"]["options"].items()}
    spec = {k: {"type": o.get("type", "str"), "default": o.get("default"), "choices": o.get("choices"),
                "required": bool(o.get("required"))} for k, o in argument_spec(name).items()}
    assert documented == spec
    for option in doc["doc"]["options"].values():
        assert option["description"]


def test_the_admin_client_and_config_editing_are_shared_not_copied():
    for name in MODULES:
        tree = ast.parse((LIBRARY / f"{name}.py").read_text())
        imports = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imports |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imports & {"socket", "http.client", "http"}, f"{name} speaks HTTP itself"
        for mod in (m for m in imports if m.startswith("ansible.module_utils.")):
            util = mod.split(".")[2]
            assert (MODULE_UTILS / f"{util}.py").exists() or util in ("basic", "common"), \
                f"{name} imports {mod}: neither playbooks/module_utils/ nor Ansible's own"
    program, mitigation = host_module("bpfleet_program"), host_module("bpfleet_mitigation")
    admin = module_util("bpfleet_admin")
    assert program.call is admin.call and mitigation.call is admin.call
    assert program.set_entry is mitigation.set_entry


@pytest.fixture
def exporter():
    fake = FakeExporter()
    yield fake
    fake.close()


def test_admin_client_requests_replies_and_a_silent_socket(exporter, tmp_path):
    admin = module_util("bpfleet_admin")
    assert admin.call(exporter.socket, "PUT", "/echo", {"a": 1}) == (200, {"method": "PUT", "body": {"a": 1}})
    assert admin.call(exporter.socket, "PUT", "/echo", b"{not json") == \
        (200, {"method": "PUT", "body": "{not json"})          # bytes go as they are
    assert admin.call(exporter.socket, "GET", "/text") == (500, {"ok": False, "error": "not json at all"})
    assert admin.get_status(exporter.socket, 0)["pid"] == 4242
    with pytest.raises(admin.ExporterDown, match="GET /status on .*missing.sock") as e:
        admin.call(str(tmp_path / "missing.sock"), "GET", "/status")
    assert isinstance(e.value, OSError)      # callers that catch OSError keep working
    assert admin.try_status(str(tmp_path / "missing.sock"), 0) is None
    exporter.answer = lambda method, parts, body: (503, {"ok": False, "error": "starting"})
    with pytest.raises(admin.ExporterDown, match="HTTP 503: starting"):
        admin.get_status(exporter.socket, 0)


CONFIG = """# BEGIN bpfleet exporter settings (bpfleet_exporter role)
listen = "0.0.0.0:9436"
# END bpfleet exporter settings (bpfleet_exporter role)

[mitigations.xdp_denylist]
mode = "monitor"
[mitigations.xdp_denylist.lists]
deny_v4 = ["192.0.2.0/24"]
[programs.tcp]
version = "1.0.0"

"""


def test_mitigation_config_block_replaces_a_hand_written_table_and_follows_the_mode(tmp_path):
    import tomli
    m = host_module("bpfleet_mitigation")
    path = tmp_path / "exporter.toml"
    path.write_text(CONFIG)
    settings = {"version": "1.0.0", "mode": "monitor", "expires": "2026-12-01T00:00:00Z",
                "lists": {"deny_v4": ["192.0.2.0/24", "198.51.100.0/24"]}}
    assert m.write_config(str(path), "xdp_denylist", settings)
    assert not m.write_config(str(path), "xdp_denylist", settings)
    parsed = tomli.loads(path.read_text())
    assert parsed["mitigations"] == {"xdp_denylist": settings} and parsed["programs"] == {"tcp": {"version": "1.0.0"}}
    lines = path.read_text().splitlines()
    assert m.block_settings(lines, "xdp_denylist") == settings
    assert m.write_config(str(path), "xdp_denylist", {**settings, "mode": "enforce"})
    assert tomli.loads(path.read_text())["mitigations"]["xdp_denylist"]["mode"] == "enforce"
    assert m.write_config(str(path), "xdp_denylist", None)
    assert "mitigations" not in tomli.loads(path.read_text()) and path.read_text().startswith("# BEGIN bpfleet exporter")


def test_seed_sees_an_entry_only_where_there_is_one():
    cfg = module_util("bpfleet_config")
    lines = CONFIG.splitlines()            # ends with a blank line and has no syscalls entry
    assert not cfg.has_entry(lines, "program", "programs", "syscalls")
    assert cfg.has_entry(lines, "program", "programs", "tcp")
    assert cfg.has_entry(["# BEGIN bpfleet program syscalls", "# END bpfleet program syscalls"],
                         "program", "programs", "syscalls")


PLAYBOOK = """- hosts: all
  gather_facts: false
  vars: {{sock: "{sock}", cfg: "{cfg}", state_dir: "{state}"}}
  tasks:
    - name: program
      bpfleet_program: {{name: demo, state: present, version: 1.1.0, digest: "{digest}", knobs: {{by_process: true}},
                        socket: "{{{{ sock }}}}", config: "{{{{ cfg }}}}", state_dir: "{{{{ state_dir }}}}", wait: 5}}
      register: program
    - name: mitigation
      bpfleet_mitigation: {{name: xdp_denylist, state: present, settings: {{version: 1.0.0, mode: monitor}},
                           socket: "{{{{ sock }}}}", config: "{{{{ cfg }}}}", wait: 5}}
      register: mitigation
    - name: mode
      bpfleet_mitigation: {{name: xdp_denylist, state: mode, mode: enforce, socket: "{{{{ sock }}}}",
                           config: "{{{{ cfg }}}}", wait: 5}}
      register: mode
    - name: bpfleet report
      ansible.builtin.debug:
        msg: {{program: "{{{{ program.program }}}}", changed: "{{{{ [program.changed, mitigation.changed, mode.changed] }}}}",
              mitigation: "{{{{ mode.mitigation }}}}", release: "{{{{ program.release }}}}"}}
"""


def test_real_ansible_runs_the_modules_with_their_shared_code(exporter, tmp_path):
    """Through runner.py, as rollouts do: Ansible finds the modules and ships module_utils."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("here ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    digest = "ab" * 32
    playbook = tmp_path / "modules.yml"
    playbook.write_text(PLAYBOOK.format(sock=exporter.socket, cfg=tmp_path / "exporter.toml",
                                        state=tmp_path / "state", digest=digest))
    timeouts = Timeouts(job=180, task=120, connect=10)
    first = run_playbook(str(playbook), str(inventory), ["here"], {}, "t-modules", str(tmp_path / "pd"),
                         timeouts=timeouts).hosts["here"]
    assert first.ok, first.message
    assert first.report["changed"] == [True, True, True]
    assert first.report["program"] == {"version": "1.1.0", "wanted_version": None, "state": "attached",
                                       "error": None, "digest": digest, "knobs": {"by_process": True},
                                       "load_errors": 0, "run_time_ns": 10, "run_count": 2}
    assert first.report["mitigation"]["mode"] == "enforce"
    assert ("PUT", "/programs/demo", {"version": "1.1.0", "knobs": {"by_process": True}, "digest": digest}) \
        in exporter.requests
    assert ("PUT", "/mitigations/xdp_denylist/mode", {"mode": "enforce"}) in exporter.requests
    import tomli
    config = tomli.loads((tmp_path / "exporter.toml").read_text())
    assert config == {"programs": {"demo": {"version": "1.1.0", "knobs": {"by_process": True}}},
                      "mitigations": {"xdp_denylist": {"version": "1.0.0", "mode": "enforce"}}}
    assert json.loads((tmp_path / "state" / "demo" / "1.1.0.knobs.json").read_text()) == {"by_process": True}
    puts = sum(1 for r in exporter.requests if r[0] == "PUT" and r[1] == "/programs/demo")
    again = run_playbook(str(playbook), str(inventory), ["here"], {}, "t-modules-2", str(tmp_path / "pd"),
                         timeouts=timeouts).hosts["here"]
    assert again.ok, again.message
    assert again.report["changed"][0] is False          # already running that version: left alone
    assert sum(1 for r in exporter.requests if r[0] == "PUT" and r[1] == "/programs/demo") == puts
