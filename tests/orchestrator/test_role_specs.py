"""Every role variable has a default (or is required) and a documented argument spec, and
every default is declared in the spec: Ansible validates the spec before a role runs, so a
variable missing from it would escape validation."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted((Path(__file__).resolve().parents[2] / "playbooks" / "roles").iterdir())


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_and_argument_specs_agree(role):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    spec = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(defaults) - set(options) == set(), "defaults without an argument spec"
    assert {k for k, o in options.items() if k not in defaults and not o.get("required")} == set(), \
        "optional variables without a default"
    for name, o in options.items():
        assert name.startswith(role.name + "_") or name.startswith("bpfleet_"), name
        assert o.get("description"), f"{name}: no description"
        assert o.get("type"), f"{name}: no type"
