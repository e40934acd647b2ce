"""The exporter config's [mitigations.<name>] tables (docs/mitigations.md#enabling-a-mitigation).

    [mitigations.xdp_denylist]
    version = "1.0.0"                     # or "latest"
    mode = "enforce"                      # else the manifest's default_mode
    expires = 2026-12-01T00:00:00Z        # absolute (what the orchestrator writes), or
    ttl = "12h"                           # from when this exporter enabled it; else the manifest's
    lists = { deny_v4 = ["192.0.2.0/24"] }
    attach = { interfaces = ["eth0"] }    # XDP; cgroup programs: { cgroup = "/sys/fs/cgroup/x" }
    knobs = { ... }

List entries are checked against the list's kind when the mitigation is applied (the kinds
live in the manifest), with the same file and field in the error.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from core.mitigation import MODES, parse_duration
from core.problems import Problem

FIELDS = ("version", "mode", "expires", "ttl", "lists", "attach", "knobs", "enabled")


@dataclass(frozen=True)
class MitigationConfig:
    name: str
    version: str = "latest"
    mode: str | None = None                  # None: the manifest's default_mode
    lists: dict = field(default_factory=dict)   # list name -> entries as written
    expires_at: float | None = None          # unix time; wins over ttl
    ttl_seconds: int | None = None           # None: the manifest's ttl
    attach: object = None                    # exporter.config.AttachTargets
    knobs: dict = field(default_factory=dict)
    where: str = ""                          # "file: mitigations.<name>" for errors

    def as_dict(self) -> dict:
        return {"version": self.version, "mode": self.mode, "expires_at": self.expires_at,
                "ttl_seconds": self.ttl_seconds, "lists": self.lists}


def parse_mitigations(table, path: str, problems: list) -> dict:
    if not isinstance(table, dict):
        problems.append(Problem(path, "mitigations", "expected a table of [mitigations.<name>] tables"))
        return {}
    out = {}
    for name, spec in table.items():
        mc = parse_one(name, spec, path, f"mitigations.{name}", problems)
        if mc is not None:
            out[name] = mc
    return out


def parse_one(name: str, spec, path: str, where: str, problems: list) -> MitigationConfig | None:
    """One mitigation's settings, from the config file or an admin API body (path "body")."""
    from exporter.config import VERSION_RE, parse_attach
    before = len(problems)

    def bad(w: str, message: str) -> None:
        problems.append(Problem(path, w, message))
    if not re.match(r"^[a-z][a-z0-9_]*$", name):
        bad(where, f"{name!r} is not a program name")
        return None
    if not isinstance(spec, dict):
        bad(where, "expected a table: { version = \"1.0.0\", mode = \"monitor\", lists = {...} }")
        return None
    for k in spec:
        if k not in FIELDS:
            bad(f"{where}.{k}", f"unknown field (expected one of: {', '.join(FIELDS)})")
    version = spec.get("version", "latest")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        bad(f"{where}.version", f"{version!r} is not \"latest\" or MAJOR.MINOR.PATCH")
    mode = spec.get("mode")
    if mode is not None and mode not in MODES:
        bad(f"{where}.mode", f"{mode!r} is not one of: {', '.join(MODES)}")
    expires_at = _expires(spec["expires"], f"{where}.expires", bad) if "expires" in spec else None
    ttl = parse_duration(spec["ttl"], f"{where}.ttl", bad) if "ttl" in spec else None
    lists = spec.get("lists", {})
    if not isinstance(lists, dict) or not all(isinstance(v, list) for v in lists.values()):
        bad(f"{where}.lists", "expected a table of list name = [entries]")
        lists = {}
    knobs = spec.get("knobs", {})
    if not isinstance(knobs, dict) or not all(isinstance(v, (int, bool)) for v in knobs.values()):
        bad(f"{where}.knobs", "expected a table of knob = integer or boolean")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        bad(f"{where}.enabled", f"expected true or false, got {enabled!r}")
    attach = parse_attach(spec["attach"], path, f"{where}.attach", problems) if "attach" in spec else None
    if len(problems) > before or enabled is False:
        return None
    return MitigationConfig(name, version, mode, dict(lists), expires_at, ttl, attach, dict(knobs),
                            f"{path}: {where}")


def _expires(v, where: str, bad) -> float | None:
    """A TOML datetime, or RFC 3339 text (JSON bodies), with a timezone; or a unix time."""
    if isinstance(v, str):
        try:
            v = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            bad(where, f"{v!r} is not an RFC 3339 time like 2026-12-01T00:00:00Z")
            return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            bad(where, f"{v.isoformat()} has no timezone: write 2026-12-01T00:00:00Z")
            return None
        return v.timestamp()
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        return float(v)
    bad(where, f"expected a time like 2026-12-01T00:00:00Z, got {v!r}")
    return None
