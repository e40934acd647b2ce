"""One module per outside boundary, checked on the syntax tree (imports inside functions too):
orchestrator/ansible/runner.py is the only module that imports ansible-runner (or Ansible's
Python API) or runs an `ansible*` command, and orchestrator/lab/system.py is the only lab module
that starts processes. Each rule first proves it sees the boundary module itself, so a scanner
that stopped seeing anything fails instead of passing."""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("core", "exporter", "orchestrator", "bpfleet")      # what ships; tests may run anything
ANSIBLE_MODULE = "orchestrator/ansible/runner.py"
LAB, LAB_SHELL = "orchestrator/lab", "orchestrator/lab/system.py"
ANSIBLE_CLI = re.compile(r"^ansible(-[a-z]+)?$")             # ansible, ansible-playbook, ...
PROCESS_MODULES = {"subprocess", "pty", "multiprocessing", "asyncio.subprocess"}
OS_PROCESS_CALLS = re.compile(r"^(system|popen|fork|forkpty|posix_spawnp?|exec[lv]p?e?|spawn[lv]p?e?)$")


@functools.lru_cache(maxsize=None)
def sources(*folders: str) -> dict[str, ast.Module]:
    out = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".venv" not in path.parts:
                out[path.relative_to(ROOT).as_posix()] = ast.parse(path.read_text(), str(path))
    return out


def imported(tree: ast.Module) -> list[tuple[str, int]]:
    """Every module a file imports: import statements, __import__("x") and import_module("x")."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append((node.module, node.lineno))
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("__import__", "import_module"):
            out.append((str(node.args[0].value), node.lineno))
    return out


def top(name: str) -> str:
    return name.split(".")[0]


def ansible_cli_names(tree: ast.Module) -> list[tuple[str, int]]:
    """String constants naming an Ansible command: what an argv or a with_name() would hold."""
    return [(n.value, n.lineno) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and ANSIBLE_CLI.match(n.value)]


def process_starts(tree: ast.Module) -> list[tuple[str, int]]:
    """Imports of process-starting modules and os.system/exec*/spawn*/popen/fork calls."""
    found = [(m, line) for m, line in imported(tree) if m in PROCESS_MODULES or top(m) in PROCESS_MODULES]
    found += [(f"os.{n.func.attr}", n.lineno) for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and getattr(n.func.value, "id", None) == "os" and OS_PROCESS_CALLS.match(n.func.attr)]
    found += [(f"os.{a.name}", n.lineno) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
              and n.module == "os" for a in n.names if OS_PROCESS_CALLS.match(a.name)]
    return found


def test_only_the_runner_uses_ansible_runner_or_the_ansible_api():
    code = sources(*CODE)
    users = {f"{f}:{line} imports {m}" for f, tree in code.items() for m, line in imported(tree)
             if top(m) in ("ansible_runner", "ansible")}
    assert any(u.startswith(f"{ANSIBLE_MODULE}:") and "ansible_runner" in u for u in users), \
        "the scan no longer sees runner.py import ansible_runner"
    assert sorted(u for u in users if not u.startswith(f"{ANSIBLE_MODULE}:")) == []


def test_only_the_runner_runs_ansible_commands():
    code = sources(*CODE)
    named = {f: ansible_cli_names(tree) for f, tree in code.items()}
    assert sorted(f"{f}:{line} names the command {v!r}" for f, hits in named.items()
                  if f != ANSIBLE_MODULE for v, line in hits) == []
    assert named[ANSIBLE_MODULE], "the scan no longer sees runner.py name the ansible command"
    # and the rest of the Ansible boundary only drives runner.py: it starts no process itself
    assert sorted(f"{f}:{line} {what}" for f, tree in code.items()
                  if f.startswith("orchestrator/ansible/") and f != ANSIBLE_MODULE
                  for what, line in process_starts(tree)) == []


def test_only_the_lab_shell_starts_processes():
    lab = sources(LAB)
    assert any(m == "subprocess" for m, _ in process_starts(lab[LAB_SHELL])), \
        "the scan no longer sees system.py import subprocess"
    assert sorted(f"{f}:{line} {what}" for f, tree in lab.items() if f != LAB_SHELL
                  for what, line in process_starts(tree)) == []


def test_the_scanner_sees_what_it_forbids():
    tree = ast.parse("import subprocess as sp\nfrom os import execvp\nimport os\n"
                     "def f():\n    __import__('pty')\n    os.system('x')\n    run(['ansible-playbook'])\n"
                     "    from ansible_runner import run\n")
    assert sorted(w for w, _ in process_starts(tree)) == ["os.execvp", "os.system", "pty", "subprocess"]
    assert [v for v, _ in ansible_cli_names(tree)] == ["ansible-playbook"]
    assert ("ansible_runner", 8) in imported(tree)
