"""Packaging (pyproject.toml): extras by where code runs, programs and playbooks as package data.

- each boundary module asks for its extra when the library is missing (a hidden module here;
  a venv without it in test_the_wheel_installs_and_finds_its_data);
- the wheel carries programs/ and playbooks/, and an installed bpfleet finds them inside its
  venv from any cwd; a host's CLI (`bpfleet exporter`) needs no extra at all.
"""
from __future__ import annotations

import importlib
import io
import subprocess
import sys
import textwrap
import zipfile
from contextlib import redirect_stderr
from pathlib import Path

import pytest

from core import extras
from orchestrator import packaging

ROOT = Path(__file__).resolve().parents[2]


def hide(monkeypatch, top: str, *fresh: str) -> None:
    """`top` and its submodules unimportable; `fresh` (the modules under test, with their
    submodules) imported anew."""
    for name in [top, *(n for n in list(sys.modules) if n.startswith(top + "."))]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in [n for n in list(sys.modules) for f in fresh if n == f or n.startswith(f + ".")]:
        monkeypatch.delitem(sys.modules, name, raising=False)


@pytest.mark.parametrize("module, hidden, extra", [
    ("exporter.otlp.push", "opentelemetry", "otlp"),
    ("core.signing", "cryptography", "signing"),
    ("orchestrator.ansible.runner", "ansible_runner", "control"),
    ("orchestrator.ansible.runner", "ansible", "control"),
    ("orchestrator.dashboards", "grafana_foundation_sdk", "dashboards"),
    ("bpfleet.commands.fleet.tables", "rich", "control"),
    ("bpfleet.commands.fleet.progress", "rich", "control"),
    ("bpfleet.top.render", "rich", "control"),
])
def test_a_boundary_without_its_library_names_its_extra(monkeypatch, module, hidden, extra):
    hide(monkeypatch, hidden, module)
    with pytest.raises(extras.MissingExtra) as e:
        importlib.import_module(module)
    assert e.value.extra == extra
    assert f"needs bpfleet[{extra}]: pip install 'bpfleet[{extra}]'" in str(e.value)


def test_the_cli_prints_the_missing_extra_in_one_line(monkeypatch):
    from bpfleet import cli
    from bpfleet.top import scrape
    hide(monkeypatch, "prometheus_client")
    # `bpfleet top` parses what it scraped with prometheus_client: give it a scrape to parse.
    monkeypatch.setattr(scrape, "fetch", lambda url, timeout=5.0: scrape.parse("x 1\n"))
    err = io.StringIO()
    with redirect_stderr(err):
        rc = cli.main(["top", "--once", "--json", "--interval", "0.001"])
    assert rc == 1
    assert err.getvalue() == ("bpfleet: bpfleet top needs bpfleet[control]: pip install "
                              "'bpfleet[control]' (no module 'prometheus_client')\n")


# -- the wheel, installed into a venv of its own, outside the checkout -------------------------

CHECK = textwrap.dedent("""
    import json, sys
    from core import resources
    out = {"programs": str(resources.programs_dir()), "include": str(resources.include_dir()),
           "playbooks": str(resources.playbooks_dir()), "checkout": resources.checkout_root(),
           "manifest": (resources.programs_dir() / "tcp" / "manifest.toml").read_text(),
           "role": (resources.playbooks_dir() / "roles/bpfleet_exporter/tasks/main.yml").is_file(),
           "vmlinux": (resources.include_dir() / "vmlinux.h").is_file()}
    from exporter.config import builtin_program_names
    out["builtins"] = builtin_program_names()
    missing = {}
    for module in ("exporter.otlp.push", "core.signing", "orchestrator.dashboards",
                   "orchestrator.ansible.runner", "bpfleet.commands.fleet.tables"):
        try:
            __import__(module)
        except ImportError as e:
            missing[module] = str(e)
    out["missing"] = missing
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """bpfleet's wheel (pip wheel of a copy of this checkout) in a fresh venv, no extras."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = packaging.build_wheel(tmp / "wheels")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
                    "--quiet", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    return wheel, venv


def test_the_wheel_carries_the_programs_and_playbooks(installed):
    wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    for rel in ("programs/tcp/manifest.toml", "programs/tcp/tcp.bpf.c", "programs/include/vmlinux.h",
                "playbooks/install.yml", "playbooks/roles/bpfleet_exporter/tasks/main.yml",
                "playbooks/library/bpfleet_program.py"):
        assert f"bpfleet_data/{rel}" in names, rel
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".o"))]


def test_the_same_source_builds_the_same_wheel(installed, tmp_path):
    # what lets a rebuilt wheelhouse keep the digest hosts recorded (no needless reinstall)
    wheel, _ = installed
    assert packaging.build_wheel(tmp_path).read_bytes() == wheel.read_bytes()


def test_the_wheel_installs_and_finds_its_data(installed, tmp_path):
    import json
    _, venv = installed
    r = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    site = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert got["programs"] == str(site / "bpfleet_data" / "programs")
    assert got["include"] == str(site / "bpfleet_data" / "programs" / "include")
    assert got["playbooks"] == str(site / "bpfleet_data" / "playbooks")
    assert got["checkout"] is None
    assert got["manifest"] == (ROOT / "programs" / "tcp" / "manifest.toml").read_text()
    assert got["role"] and got["vmlinux"]
    from exporter.config import builtin_program_names
    assert got["builtins"] == builtin_program_names()
    # No extras installed: each boundary says which one it needs.
    assert {m: e.split(":")[0] for m, e in got["missing"].items()} == {
        "exporter.otlp.push": "OTLP export needs bpfleet[otlp]",
        "core.signing": "Artifact signatures needs bpfleet[signing]",
        "orchestrator.dashboards": "Generating dashboards needs bpfleet[dashboards]",
        "orchestrator.ansible.runner": "Running Ansible needs bpfleet[control]",
        "bpfleet.commands.fleet.tables": "The terminal views needs bpfleet[control]",
    }


def test_a_host_runs_the_exporter_cli_without_any_extra(installed, tmp_path):
    _, venv = installed
    for argv in (["exporter", "--help"], ["programs", "verify", "--help"]):
        r = subprocess.run([str(venv / "bin" / "bpfleet"), *argv], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (argv, r.stderr)
        assert r.stdout.startswith(f"usage: bpfleet {' '.join(argv[:-1])}"), r.stdout
