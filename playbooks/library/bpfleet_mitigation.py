#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Ansible module: a mitigation in the host's bpfleet exporter (docs/mitigations.md), read and
changed through the admin API, and kept in the exporter config so a restart keeps it.
Standard library only; one module run per host per operation (TCG hosts pay ~1.2 s a run)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: bpfleet_mitigation
short_description: Query, apply, switch the mode of, or revoke a mitigation in the host's bpfleet exporter
description:
  - C(state=query) reads the mitigation's status (state, mode, decisions, expiry); it changes nothing.
  - C(state=present) applies it (C(PUT /mitigations/<name>) with O(settings)). On success the
    settings are written to the exporter config as a marked C([mitigations.<name>]) block.
  - C(state=mode) switches the mode of a running mitigation (C(PUT /mitigations/<name>/mode),
    no reload) and updates the config block.
  - C(state=absent) revokes it (C(DELETE /mitigations/<name>)) and removes the config block.
  - Check mode changes nothing and reports the mitigation's status.
author: bpfleet
options:
  name: {type: str, required: true, description: The mitigation (its program's name).}
  state: {type: str, default: query, choices: [query, present, mode, absent], description: What to do.}
  settings:
    type: dict
    description:
      - "For O(state=present): C(version), C(mode), C(lists), C(expires) (RFC 3339), C(ttl), C(attach), C(knobs)."
      - Keys whose value is null are left out.
  mode: {type: str, choices: [monitor, enforce], description: "For O(state=mode): the new mode."}
  socket: {type: path, default: /run/bpfleet/admin.sock, description: "The exporter's admin socket."}
  config: {type: path, default: /etc/bpfleet/exporter.toml, description: The exporter config file.}
  wait: {type: int, default: 30, description: Seconds to wait for the admin socket to answer.}
"""

EXAMPLES = r"""
- name: Deny two networks on eth0 for 12 hours, watching first
  bpfleet_mitigation:
    name: xdp_denylist
    state: present
    settings:
      version: 1.0.0
      mode: monitor
      expires: "2026-12-01T00:00:00Z"
      attach: {interface: eth0}
      lists:
        deny_v4: [192.0.2.0/24, 198.51.100.0/24]

- name: Enforce it
  bpfleet_mitigation:
    name: xdp_denylist
    state: mode
    mode: enforce

- name: Revoke it
  bpfleet_mitigation:
    name: xdp_denylist
    state: absent
"""

RETURN = r"""
exporter:
  description: Whether the exporter answers on its admin socket, and the error if it does not.
  type: dict
  returned: always
  sample: {up: true, error: null}
mitigation:
  description: >-
    The mitigation's status after the change, as the exporter's C(GET /mitigations) lists it
    (name, version, state, reason, mode, expires_at, answers, blocks, lists); null if the
    exporter does not know it.
  type: dict
  returned: always
release: {type: str, returned: always, description: "The kernel release (C(uname -r))."}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bpfleet_admin import ExporterDown, call
from ansible.module_utils.bpfleet_config import markers, read_lines, set_entry, toml_value

ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "state": {"type": "str", "default": "query", "choices": ["query", "present", "mode", "absent"]},
    "settings": {"type": "dict"},
    "mode": {"type": "str", "choices": ["monitor", "enforce"]},
    "socket": {"type": "path", "default": "/run/bpfleet/admin.sock"},
    "config": {"type": "path", "default": "/etc/bpfleet/exporter.toml"},
    "wait": {"type": "int", "default": 30},
}
SETTINGS_PREFIX = "# settings: "


def block_settings(lines: list[str], name: str) -> dict | None:
    """The settings the block was written from (kept as JSON in its first comment)."""
    begin = markers("mitigation", name)[0]
    for i, line in enumerate(lines):
        if line.strip() == begin and i + 1 < len(lines) and lines[i + 1].startswith(SETTINGS_PREFIX):
            return json.loads(lines[i + 1][len(SETTINGS_PREFIX):])
    return None


def write_config(path: str, name: str, settings: dict | None) -> bool:
    """The config holds `settings` for `name` (None: not at all). -> changed?"""
    body = None
    if settings is not None:
        body = [SETTINGS_PREFIX + json.dumps(settings, sort_keys=True), f"[mitigations.{name}]"]
        body += [f"{k} = {toml_value(v)}" for k, v in sorted(settings.items()) if v is not None]
    return set_entry(path, "mitigation", "mitigations", name, body)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "mode", ("mode",))])
    p = module.params
    name, state, sock = p["name"], p["state"], p["socket"]
    out = {"changed": False, "release": os.uname().release, "exporter": {"up": True, "error": None}}

    def status():
        code, reply = call(sock, "GET", "/mitigations", wait=p["wait"])
        return next((m for m in reply.get("mitigations", []) if m["name"] == name), None)
    try:
        if state == "query" or module.check_mode:
            module.exit_json(**out, mitigation=status())
        if state == "present":
            settings = {k: v for k, v in (p["settings"] or {}).items() if v is not None}
            code, reply = call(sock, "PUT", f"/mitigations/{name}", settings, wait=p["wait"])
            if code != 200:
                module.fail_json(msg=f"apply {name}: {reply.get('error')}", **out, mitigation=reply.get("mitigation"))
            out["changed"] = write_config(p["config"], name, settings)
        elif state == "mode":
            code, reply = call(sock, "PUT", f"/mitigations/{name}/mode", {"mode": p["mode"]}, wait=p["wait"])
            if code != 200:
                module.fail_json(msg=f"mode of {name}: {reply.get('error')}", **out, mitigation=status())
            settings = block_settings(read_lines(p["config"]), name)
            if settings is not None:
                out["changed"] = write_config(p["config"], name, {**settings, "mode": p["mode"]})
        else:
            code, reply = call(sock, "DELETE", f"/mitigations/{name}", wait=p["wait"])
            out["changed"] = write_config(p["config"], name, None) or code == 200
        module.exit_json(**out, mitigation=status())
    except ExporterDown as e:
        out["exporter"] = {"up": False, "error": str(e)}
        module.fail_json(msg=f"no exporter answers on {sock}: {e}", **out, mitigation=None)


if __name__ == "__main__":
    main()
