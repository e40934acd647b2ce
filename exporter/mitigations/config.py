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
from dataclasses import dataclass, field

from core import names
from core.fields import Field, Reader, Section, join, one_of
from core.mitigation import MODES, parse_duration
from exporter.config_programs import ATTACH_FIELD, ENABLED, KNOBS, VERSION, AttachTargets


@dataclass(frozen=True)
class MitigationConfig:
    name: str
    version: str = "latest"
    mode: str | None = None                  # None: the manifest's default_mode
    lists: dict = field(default_factory=dict)   # list name -> entries as written
    expires_at: float | None = None          # unix time; wins over ttl
    ttl_seconds: int | None = None           # None: the manifest's ttl
    attach: AttachTargets | None = None
    knobs: dict = field(default_factory=dict)
    where: str = ""                          # "file: mitigations.<name>" for errors

    def as_dict(self) -> dict:
        return {"version": self.version, "mode": self.mode, "expires_at": self.expires_at,
                "ttl_seconds": self.ttl_seconds, "lists": self.lists}


MODE = Field("mode", check=one_of(MODES), help="monitor (count only) or enforce; default: the manifest's")
MITIGATION = Section((
    VERSION, MODE, ENABLED, KNOBS, ATTACH_FIELD,
    Field("expires", read=lambda r, v, w: _expires(v, w, r.bad),
          help="absolute end: a TOML datetime or RFC 3339 text with a timezone, or a unix time"),
    Field("ttl", read=lambda r, v, w: parse_duration(v, w, r.bad),
          help='how long from when this exporter enables it: "12h", "30d" or seconds'),
    Field("lists", dict, expect="a table of list name = [entries]",
          check=lambda t: all(isinstance(v, list) for v in t.values()),
          help="the allow/deny lists' entries (checked against the list kinds when applied)"),
), expect='a table: { version = "1.0.0", mode = "monitor", lists = {...} }')


def read_mitigations(r: Reader, table: dict, where: str) -> dict:
    return {name: mc for name, spec in table.items()
            if (mc := read_one(r, name, spec, join(where, name))) is not None}


def read_one(r: Reader, name: str, spec, where: str) -> MitigationConfig | None:
    """One mitigation's settings, from the config file or an admin API body; None when it
    has problems (in `r`) or enabled = false."""
    if not names.is_name(name):
        r.bad(where, f"{name!r} is not a program name")
        return None
    v = MITIGATION.read(r, spec, where)
    if v is None or not v["enabled"]:
        return None
    return MitigationConfig(name, v["version"], v.get("mode"), dict(v.get("lists", {})), v.get("expires"),
                            v.get("ttl"), v.get("attach"), v.get("knobs", {}), f"{r.path}: {where}")


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
