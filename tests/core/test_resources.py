"""core/resources.py: the built-in programs and the playbooks are found through
importlib.resources (bpfleet_data), never relative to a module's __file__. The installed-wheel
case is tests/setup/test_wheel_and_extras.py."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from core import resources

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_resolves_to_its_own_folders():
    assert resources.programs_dir() == ROOT / "programs"
    assert resources.include_dir() == ROOT / "programs" / "include"
    assert resources.playbooks_dir() == ROOT / "playbooks"
    assert resources.checkout_root() == ROOT


def test_the_folders_hold_what_callers_expect():
    assert (resources.programs_dir() / "tcp" / "manifest.toml").is_file()
    assert (resources.include_dir() / "vmlinux.h").is_file()
    assert (resources.playbooks_dir() / "install.yml").is_file()
    assert (resources.playbooks_dir() / "roles" / "bpfleet_exporter").is_dir()


def test_without_the_data_package_the_error_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, resources.DATA_PACKAGE, None)
    with pytest.raises(resources.ResourceError, match="bpfleet_data package is not installed"):
        resources.programs_dir()
    assert resources.checkout_root() is None


# The finding of issue 12: code found programs/ and playbooks/ relative to the checkout.
RELATIVE = re.compile(r"__file__.*(programs|playbooks|parent\.parent|parents\[)")


def test_no_code_finds_its_data_relative_to_its_own_file():
    found = sorted({str(p.relative_to(ROOT)) for pkg in ("core", "exporter", "orchestrator", "bpfleet")
                    for p in (ROOT / pkg).rglob("*.py")
                    for line in p.read_text().splitlines() if RELATIVE.search(line)})
    # The lab's Debian package table lives in scripts/ (a checkout-only tool, not package data).
    assert found == ["orchestrator/lab/debian_packages.py"], found
