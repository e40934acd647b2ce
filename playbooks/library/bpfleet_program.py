#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Ansible module: what a host's bpfleet exporter runs, read and changed through its admin API.

Runs on the managed host with its own python3 (standard library only). One module run per host
per operation on purpose: under TCG a module run costs ~1.2 s, so reading /status, switching the
version, persisting the config and reading /status back happen in one."""
from __future__ import annotations

DOCUMENTATION = r"""
module: bpfleet_program
short_description: Query, load, upgrade or unload a program in the host's bpfleet exporter
description:
  - C(state=query) reads the exporter's C(/status) over its admin socket, plus the host's load
    average, CPU count and kernel; it changes nothing.
  - C(state=present) asks the exporter to run O(name) at O(version) (C(PUT /programs/<name>) with
    the pinned O(digest)). The exporter attaches the new version before it detaches the old one
    and refuses an artifact whose digest differs. After success the version is written to the
    exporter config, so a restart keeps it; after a failure the config is left alone, so a
    restarted exporter comes back on the previous version.
  - C(state=absent) unloads the program (C(DELETE /programs/<name>)) and removes it from the config.
  - With O(seed=true), C(state=present) acts only if the config has no entry for O(name) yet
    (the initial programs of an install, so re-running the install never undoes a rollout).
  - Idempotent. A program already running at that version, digest and knobs is left alone.
    Check mode reports what would change.
author: bpfleet
options:
  name: {type: str, description: "The program. Required for O(state=present) and O(state=absent)."}
  state: {type: str, default: query, choices: [query, present, absent], description: What to do.}
  version: {type: str, description: "The version to run. Required for O(state=present)."}
  digest: {type: str, description: "The pinned artifact digest (sha256 hex); default the host registry's C(index.json) digest."}
  knobs: {type: dict, description: "Knob values; default the program's defaults."}
  restore_knobs: {type: bool, default: false, description: "Run O(version) with the knobs this host last ran it with (rollback)."}
  seed: {type: bool, default: false, description: "Act only if the config has no entry for O(name) yet; later rollouts own it."}
  socket: {type: path, default: /run/bpfleet/admin.sock, description: "The exporter's admin socket."}
  config: {type: path, default: /etc/bpfleet/exporter.toml, description: The exporter config file.}
  registry: {type: path, default: /var/lib/bpfleet/registry, description: "The host's registry of program artifacts."}
  state_dir: {type: path, default: /var/lib/bpfleet/state, description: "Where the knobs each version ran with are kept, for O(restore_knobs)."}
  wait: {type: int, default: 30, description: "Seconds to wait for the admin socket to answer (an exporter that is restarting)."}
  supervisor_state: {type: path, default: /run/bpfleet/supervisor.json, description: "The state file of bpfleet-supervise (restarts, last exit)."}
"""

EXAMPLES = r"""
- name: Read the kernel and what the exporter runs
  bpfleet_program:
    state: query
    name: syscalls
  register: facts

- name: Run syscalls 1.1.0, pinned to its digest
  bpfleet_program:
    name: syscalls
    state: present
    version: 1.1.0
    digest: 9f2c1e0b7d4a5c3e8f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a
    knobs:
      by_process: true

- name: Roll back to 1.0.0 with the knobs it ran with before
  bpfleet_program:
    name: syscalls
    state: present
    version: 1.0.0
    restore_knobs: true
    wait: 120

- name: Unload it
  bpfleet_program:
    name: syscalls
    state: absent
"""

RETURN = r"""
exporter:
  description: Whether the exporter answers, with its pid, uptime and the error if it does not.
  type: dict
  returned: always
  sample: {up: true, pid: 4242, uptime_seconds: 310.5, error: null}
program:
  description: >-
    The program's status after the change (null if it is not loaded): version, wanted_version,
    state, error, digest, knobs, load_errors, and run_time_ns and run_count summed over its BPF programs.
  type: dict
  returned: when O(name) is given
programs: {type: dict, returned: always, description: "Every program the exporter knows, by name, each as in RV(program)."}
load1: {type: float, returned: always, description: "The host's 1-minute load average."}
cpus: {type: int, returned: always, description: CPUs this host may use.}
release: {type: str, returned: always, description: "The kernel release (C(uname -r))."}
build: {type: str, returned: always, description: "The kernel build (C(uname -v))."}
btf: {type: bool, returned: always, description: "Whether kernel BTF is readable at C(/sys/kernel/btf/vmlinux)."}
python: {type: str, returned: always, description: "The host's Python version (major.minor)."}
supervisor: {type: dict, returned: always, description: "The state of bpfleet-supervise (restarts, last_exit) on supervised hosts, else null."}
seeded: {type: bool, returned: "when O(seed=true) found an entry", description: "False: the config had the program already, so nothing was done."}
"""

import json
import os
import sys

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.bpfleet_admin import ExporterDown, call, get_status, try_status
from ansible.module_utils.bpfleet_config import has_entry, read_lines, set_entry, toml_value

ARGUMENT_SPEC = {
    "name": {"type": "str"},
    "state": {"type": "str", "default": "query", "choices": ["query", "present", "absent"]},
    "version": {"type": "str"},
    "digest": {"type": "str"},
    "knobs": {"type": "dict"},
    "restore_knobs": {"type": "bool", "default": False},
    "seed": {"type": "bool", "default": False},
    "socket": {"type": "path", "default": "/run/bpfleet/admin.sock"},
    "config": {"type": "path", "default": "/etc/bpfleet/exporter.toml"},
    "registry": {"type": "path", "default": "/var/lib/bpfleet/registry"},
    "state_dir": {"type": "path", "default": "/var/lib/bpfleet/state"},
    "wait": {"type": "int", "default": 30},
    "supervisor_state": {"type": "path", "default": "/run/bpfleet/supervisor.json"},
}


def summarize(s: dict) -> dict:
    progs = s.get("programs") or {}
    return {"version": s.get("version"), "wanted_version": s.get("wanted_version"),
            "state": s.get("state"), "error": s.get("error"), "digest": s.get("digest"),
            "knobs": s.get("knobs") or {}, "load_errors": s.get("load_errors", 0),
            "run_time_ns": sum(int(p.get("run_time_ns") or 0) for p in progs.values()),
            "run_count": sum(int(p.get("run_count") or 0) for p in progs.values())}


def host_health() -> dict:
    try:
        with open("/proc/loadavg") as f:
            load1 = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        load1 = None
    u = os.uname()
    return {"load1": load1, "cpus": len(os.sched_getaffinity(0)) or os.cpu_count() or 1,
            "release": u.release, "build": u.version,
            "btf": os.access("/sys/kernel/btf/vmlinux", os.R_OK),
            "python": "%d.%d" % sys.version_info[:2]}


def write_config(path: str, name: str, version: str | None, knobs: dict) -> bool:
    """Make the config hold `name` at `version` (None: not at all). -> changed?"""
    body = None
    if version is not None:
        body = [f"[programs.{name}]", f'version = "{version}"']
        if knobs:   # knob values are integers or booleans (core/manifest.py)
            body.append("knobs = " + toml_value({k: v if isinstance(v, bool) else int(v)
                                                 for k, v in sorted(knobs.items())}))
    return set_entry(path, "program", "programs", name, body)


# ---- knob sets per version, for rollback to exactly what ran before ----
def remember_knobs(state_dir: str, name: str, version: str, knobs: dict) -> None:
    d = os.path.join(state_dir, name)
    os.makedirs(d, mode=0o755, exist_ok=True)
    with open(os.path.join(d, f"{version}.knobs.json"), "w") as f:
        json.dump(knobs, f)


def recalled_knobs(state_dir: str, name: str, version: str) -> dict | None:
    try:
        with open(os.path.join(state_dir, name, f"{version}.knobs.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def registry_digest(registry: str, name: str, version: str) -> str | None:
    try:
        with open(os.path.join(registry, name, version, "index.json")) as f:
            return json.load(f).get("digest")
    except (OSError, ValueError):
        return None


def report(module, status: dict | None, name: str | None, error: str | None = None, **extra):
    progs = {s["name"]: summarize(s) for s in (status or {}).get("programs", [])}
    exporter = {"up": status is not None, "pid": (status or {}).get("pid"),
                "uptime_seconds": (status or {}).get("uptime_seconds"), "error": error}
    try:
        with open(module.params["supervisor_state"]) as f:
            supervisor = json.load(f)
    except (OSError, ValueError):
        supervisor = None
    out = {"exporter": exporter, "programs": progs, "supervisor": supervisor, **host_health(), **extra}
    if name:
        out["program"] = progs.get(name)
    return out


def is_done(state: str, current: dict | None, version: str, digest: str | None, knobs: dict) -> bool:
    if state == "absent":
        return current is None
    return (current is not None and current.get("version") == version
            and current.get("state") == "attached" and (current.get("knobs") or {}) == knobs
            and (digest is None or current.get("digest") == digest))


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "present", ("name", "version")),
                                        ("state", "absent", ("name",))])
    p = module.params
    name, state, sock = p["name"], p["state"], p["socket"]

    if state == "query":
        try:
            module.exit_json(changed=False, **report(module, get_status(sock, min(p["wait"], 5)), name))
        except ExporterDown as e:
            module.exit_json(changed=False, **report(module, None, name, str(e)))

    knobs = p["knobs"] or {}
    if state == "present" and p["restore_knobs"]:
        knobs = recalled_knobs(p["state_dir"], name, p["version"]) or knobs
    if p["seed"] and state == "present" and has_entry(read_lines(p["config"]), "program", "programs", name):
        # configured already: rollouts own it now
        module.exit_json(changed=False, seeded=False, **report(module, try_status(sock, min(p["wait"], 5)), name))

    try:
        status = get_status(sock, p["wait"])
    except ExporterDown as e:
        if module.check_mode:   # e.g. an install in check mode: nothing runs yet
            module.exit_json(changed=True, **report(module, None, name, str(e)))
        module.fail_json(msg=f"the exporter does not answer on its admin socket: {e}",
                         **report(module, None, name, str(e)))
    current = next((s for s in status.get("programs", []) if s["name"] == name), None)
    digest = p["digest"] or (registry_digest(p["registry"], name, p["version"]) if state == "present" else None)
    version = p["version"] if state == "present" else None
    done = is_done(state, current, p["version"], digest, knobs)
    if done or module.check_mode:
        changed = not done
        if done and not module.check_mode:   # make the config say what runs, if it doesn't yet
            changed = write_config(p["config"], name, version, knobs)
        module.exit_json(changed=changed, **report(module, status, name))

    if state == "present":
        body = {"version": p["version"], "knobs": knobs, **({"digest": digest} if digest else {})}
        try:
            code, reply = call(sock, "PUT", f"/programs/{name}", body)
        except ExporterDown as e:   # e.g. the exporter died loading it
            after = try_status(sock, p["wait"])
            module.fail_json(msg=f"{name}@{p['version']}: the exporter stopped answering during the "
                             f"upgrade ({e}); it was {'restarted' if after else 'not back'} "
                             f"(pid {(after or {}).get('pid')})", **report(module, after, name, str(e)))
        if code != 200 or not reply.get("ok"):
            module.fail_json(msg=f"{name}@{p['version']}: the exporter refused it (HTTP {code}): "
                             f"{reply.get('error')}", **report(module, try_status(sock, 5), name))
        remember_knobs(p["state_dir"], name, p["version"], knobs)
    else:
        try:
            code, reply = call(sock, "DELETE", f"/programs/{name}")
        except ExporterDown as e:
            module.fail_json(msg=f"{name}: the exporter stopped answering: {e}", **report(module, None, name, str(e)))
        if code not in (200, 404):
            module.fail_json(msg=f"{name}: unload refused (HTTP {code}): {reply.get('error')}",
                             **report(module, status, name))
    write_config(p["config"], name, version, knobs)
    module.exit_json(changed=True, **report(module, try_status(sock, p["wait"]), name))


if __name__ == "__main__":
    main()
