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
  - C(state=query) reads the exporter's C(/status) over its admin socket plus the host's load
    average and CPU count; it changes nothing.
  - C(state=present) asks the exporter to run I(name) at I(version) (C(PUT /programs/<name>) with
    the pinned I(digest)); the exporter attaches the new version before it detaches the old one
    and refuses an artifact whose digest differs. After success the version is written to the
    exporter config, so a restart keeps it; after a failure the config is left alone, so a
    restarted exporter comes back on the previous version.
  - C(state=absent) unloads the program (C(DELETE)) and removes it from the config.
  - With I(seed), C(present) acts only if the config has no entry for I(name) yet (the install
    role's initial programs: re-running the install never undoes a rollout).
  - Idempotent: a program already running at that version, digest and knobs is left alone.
    Check mode reports what would change.
options:
  name: {description: Program name; optional for query, type: str}
  state: {description: query, present or absent, type: str, default: query, choices: [query, present, absent]}
  version: {description: Version to run (present), type: str}
  digest: {description: Pinned artifact digest; default the host registry's index.json digest, type: str}
  knobs: {description: Knob values; default the program's defaults, type: dict}
  restore_knobs: {description: Use the knobs this host last ran I(version) with (rollback), type: bool, default: false}
  seed: {description: "Only if the config has no entry for I(name): an initial program, which later rollouts own", type: bool, default: false}
  socket: {description: The exporter's admin socket, type: path, default: /run/bpfleet/admin.sock}
  config: {description: The exporter config file, type: path, default: /etc/bpfleet/exporter.toml}
  registry: {description: The host's registry, type: path, default: /var/lib/bpfleet/registry}
  state_dir: {description: Where knob sets per version are remembered, type: path, default: /var/lib/bpfleet/state}
  wait: {description: Seconds to wait for the admin socket to answer (a restarting exporter), type: int, default: 30}
  supervisor_state: {description: bpfleet-supervise's state file (restarts), type: path, default: /run/bpfleet/supervisor.json}
"""

RETURN = r"""
exporter: {description: "{up, pid, uptime_seconds, error}", type: dict, returned: always}
program: {description: "The program's status after the change: version, state, error, digest, knobs, run_time_ns, run_count (null if not loaded)", type: dict, returned: when name is given}
programs: {description: Every program the exporter knows, by name, type: dict, returned: always}
load1: {description: 1-minute load average, type: float, returned: always}
cpus: {description: CPUs this host may use, type: int, returned: always}
release: {description: Kernel release (uname -r), type: str, returned: always}
build: {description: Kernel build (uname -v), type: str, returned: always}
btf: {description: Kernel BTF readable at /sys/kernel/btf/vmlinux, type: bool, returned: always}
supervisor: {description: "bpfleet-supervise's state: restarts, last_exit (supervised hosts)", type: dict, returned: always}
"""

import http.client
import json
import os
import re
import socket
import sys
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


class ExporterDown(Exception):
    pass


def call(path: str, method: str, url: str, body: dict | None = None, timeout: float = 120):
    """-> (HTTP status, JSON reply). ExporterDown when nothing answers on the socket."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        try:
            return r.status, json.loads(text or b"{}")
        except ValueError:
            return r.status, {"ok": False, "error": text.decode(errors="replace")[:500]}
    except (OSError, http.client.HTTPException) as e:
        raise ExporterDown(f"{method} {url} on {path}: {e}")
    finally:
        conn.close()


def get_status(path: str, wait: float) -> dict:
    deadline = time.monotonic() + wait
    while True:
        try:
            code, reply = call(path, "GET", "/status", timeout=30)
            if code == 200:
                return reply
            raise ExporterDown(f"GET /status: HTTP {code}")
        except ExporterDown:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def try_status(path: str, wait: float) -> dict | None:
    try:
        return get_status(path, wait)
    except ExporterDown:
        return None


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


# ---- the config file: one marked block per program, so edits never touch anything else ----
def _markers(name: str) -> tuple[str, str]:
    return f"# BEGIN bpfleet program {name}", f"# END bpfleet program {name}"


def render_block(name: str, version: str, knobs: dict) -> list[str]:
    begin, end = _markers(name)
    lines = [begin, f"[programs.{name}]", f'version = "{version}"']
    if knobs:
        vals = ", ".join(f"{k} = {str(v).lower() if isinstance(v, bool) else int(v)}"
                         for k, v in sorted(knobs.items()))
        lines.append(f"knobs = {{ {vals} }}")
    return lines + [end]


def without_program(lines: list[str], name: str) -> list[str]:
    """Drop the program's marked block, and a hand-written [programs.<name>] table too."""
    begin, end = _markers(name)
    header = re.compile(rf"^\s*\[\s*programs\s*\.\s*{re.escape(name)}\s*(\.|\])")
    out, skip = [], None
    for line in lines:
        if skip == "block":
            if line.strip() == end:
                skip = None
            continue
        if skip == "table":
            if line.lstrip().startswith("[") and not header.match(line) or line.startswith("# BEGIN "):
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


def write_config(path: str, name: str, version: str | None, knobs: dict) -> bool:
    """Make the config hold `name` at `version` (None: not at all). -> changed?"""
    try:
        with open(path) as f:
            old = f.read().splitlines()
    except FileNotFoundError:
        old = []
    new = without_program(old, name)
    if version is not None:
        new = new + ([""] if new else []) + render_block(name, version, knobs)
    if [l.rstrip() for l in new] == [l.rstrip() for l in old]:
        return False
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(new) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True


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


def main() -> None:
    module = AnsibleModule(argument_spec={
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
    }, required_if=[("state", "present", ("name", "version")), ("state", "absent", ("name",))],
        supports_check_mode=True)
    p = module.params
    name, state = p["name"], p["state"]

    if state == "query":
        try:
            status = get_status(p["socket"], min(p["wait"], 5))
            module.exit_json(changed=False, **report(module, status, name))
        except ExporterDown as e:
            module.exit_json(changed=False, **report(module, None, name, str(e)))

    knobs = p["knobs"] or {}
    if state == "present" and p["restore_knobs"]:
        knobs = recalled_knobs(p["state_dir"], name, p["version"]) or knobs
    if p["seed"] and state == "present":
        try:
            with open(p["config"]) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            lines = []
        if without_program(lines, name) != lines:   # configured already: rollouts own it now
            module.exit_json(changed=False, seeded=False,
                             **report(module, try_status(p["socket"], min(p["wait"], 5)), name))

    try:
        status = get_status(p["socket"], p["wait"])
    except ExporterDown as e:
        if module.check_mode:   # e.g. an install in check mode: nothing runs yet
            module.exit_json(changed=True, **report(module, None, name, str(e)))
        module.fail_json(msg=f"the exporter does not answer on its admin socket: {e}",
                         **report(module, None, name, str(e)))
    current = next((s for s in status.get("programs", []) if s["name"] == name), None)
    digest = p["digest"] or (registry_digest(p["registry"], name, p["version"]) if state == "present" else None)
    if state == "present":
        done = (current is not None and current.get("version") == p["version"]
                and current.get("state") == "attached" and (current.get("knobs") or {}) == knobs
                and (digest is None or current.get("digest") == digest))
    else:
        done = current is None
    if done or module.check_mode:
        changed = not done
        if done and not module.check_mode:   # make the config say what runs, if it doesn't yet
            changed = write_config(p["config"], name, p["version"] if state == "present" else None, knobs)
        module.exit_json(changed=changed, **report(module, status, name))

    if state == "present":
        body = {"version": p["version"], "knobs": knobs}
        if digest:
            body["digest"] = digest
        try:
            code, reply = call(p["socket"], "PUT", f"/programs/{name}", body)
        except ExporterDown as e:   # e.g. the exporter died loading it
            after = try_status(p["socket"], p["wait"])
            module.fail_json(msg=f"{name}@{p['version']}: the exporter stopped answering during the "
                             f"upgrade ({e}); it was {'restarted' if after else 'not back'} "
                             f"(pid {(after or {}).get('pid')})", **report(module, after, name, str(e)))
        if code != 200 or not reply.get("ok"):
            module.fail_json(msg=f"{name}@{p['version']}: the exporter refused it (HTTP {code}): "
                             f"{reply.get('error')}", **report(module, try_status(p["socket"], 5), name))
        remember_knobs(p["state_dir"], name, p["version"], knobs)
        write_config(p["config"], name, p["version"], knobs)
    else:
        try:
            code, reply = call(p["socket"], "DELETE", f"/programs/{name}")
        except ExporterDown as e:
            module.fail_json(msg=f"{name}: the exporter stopped answering: {e}", **report(module, None, name, str(e)))
        if code not in (200, 404):
            module.fail_json(msg=f"{name}: unload refused (HTTP {code}): {reply.get('error')}",
                             **report(module, status, name))
        write_config(p["config"], name, None, knobs)
    module.exit_json(changed=True, **report(module, try_status(p["socket"], p["wait"]), name))


if __name__ == "__main__":
    main()
