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
  - C(state=query) reads the mitigation's status (state, mode, decisions, expiry); changes nothing.
  - C(state=present) applies it (C(PUT /mitigations/<name>) with I(settings)); on success the
    settings are written to the config as a marked C([mitigations.<name>]) block.
  - C(state=mode) switches the mode of a running mitigation (C(PUT /mitigations/<name>/mode),
    no reload) and updates the config block.
  - C(state=absent) revokes it (C(DELETE /mitigations/<name>)) and removes the config block.
options:
  name: {description: Mitigation (program) name, type: str, required: true}
  state: {description: query, present, mode or absent, type: str, default: query, choices: [query, present, mode, absent]}
  settings: {description: "present: version, mode, lists, expires (RFC 3339), ttl, attach, knobs", type: dict}
  mode: {description: "mode: monitor or enforce", type: str}
  socket: {description: The exporter's admin socket, type: path, default: /run/bpfleet/admin.sock}
  config: {description: The exporter config file, type: path, default: /etc/bpfleet/exporter.toml}
  wait: {description: Seconds to wait for the admin socket, type: int, default: 30}
"""

RETURN = r"""
exporter: {description: "{up, error}", type: dict, returned: always}
mitigation: {description: "The mitigation's status after the change (null if the exporter does not know it)", type: dict, returned: always}
release: {description: Kernel release (uname -r), type: str, returned: always}
"""

import http.client
import json
import os
import re
import socket
import time

from ansible.module_utils.basic import AnsibleModule


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def call(path: str, method: str, url: str, body=None, wait: float = 0):
    """-> (HTTP status, JSON reply); OSError when nothing answers within `wait` seconds."""
    deadline = time.monotonic() + wait
    while True:
        conn = UnixHTTPConnection(path, 120)
        try:
            conn.request(method, url, body=None if body is None else json.dumps(body).encode(),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            text = r.read()
            try:
                return r.status, json.loads(text or b"{}")
            except ValueError:
                return r.status, {"ok": False, "error": text.decode(errors="replace")[:500]}
        except (OSError, http.client.HTTPException):
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
        finally:
            conn.close()


def _markers(name: str):
    return f"# BEGIN bpfleet mitigation {name}", f"# END bpfleet mitigation {name}"


def toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml(x)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {v!r} to TOML")


def without_block(lines, name):
    begin, end = _markers(name)
    header = re.compile(rf"^\s*\[\s*mitigations\s*\.\s*{re.escape(name)}\s*\]")
    out, skip = [], None
    for line in lines:
        if skip == "block":
            skip = None if line.strip() == end else "block"
            continue
        if skip == "table":
            if line.lstrip().startswith("[") or line.startswith("# BEGIN "):
                skip = None
            else:
                continue
        if line.strip() == begin:
            skip = "block"
            continue
        if header.match(line):
            skip = "table"
            continue
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return out


def block_settings(lines, name):
    """The settings the block was written from (kept as JSON in its first comment)."""
    begin, _ = _markers(name)
    for i, line in enumerate(lines):
        if line.strip() == begin and i + 1 < len(lines) and lines[i + 1].startswith("# settings: "):
            return json.loads(lines[i + 1][len("# settings: "):])
    return None


def write_config(path, name, settings):
    """The config holds `settings` for `name` (None: not at all). -> changed?"""
    try:
        with open(path) as f:
            old = f.read().splitlines()
    except FileNotFoundError:
        old = []
    new = without_block(old, name)
    if settings is not None:
        begin, end = _markers(name)
        new += ([""] if new else []) + [begin, "# settings: " + json.dumps(settings, sort_keys=True),
                                        f"[mitigations.{name}]"]
        new += [f"{k} = {toml(v)}" for k, v in sorted(settings.items()) if v is not None] + [end]
    if new == old:
        return False
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(new) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def main():
    module = AnsibleModule(argument_spec={
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "default": "query", "choices": ["query", "present", "mode", "absent"]},
        "settings": {"type": "dict"},
        "mode": {"type": "str", "choices": ["monitor", "enforce"]},
        "socket": {"type": "path", "default": "/run/bpfleet/admin.sock"},
        "config": {"type": "path", "default": "/etc/bpfleet/exporter.toml"},
        "wait": {"type": "int", "default": 30},
    }, supports_check_mode=True)
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
    except OSError as e:
        out["exporter"] = {"up": False, "error": f"admin socket {sock}: {e}"}
        module.fail_json(msg=f"no exporter answers on {sock}: {e}", **out, mitigation=None)


if __name__ == "__main__":
    main()
