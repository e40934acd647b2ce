"""Exporter configuration (TOML), with a built-in default that enables the built-in programs."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import tomli

from bpfleet.manifest import SEMVER_RE
from bpfleet.problems import Problem, ProblemsError

BUILTIN_PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "programs"
DEFAULT_LISTEN = "127.0.0.1:9436"
DEFAULT_PIN_ROOT = "/sys/fs/bpf/bpfleet"
DEFAULT_ADMIN_SOCKET = "/run/bpfleet/admin.sock"
VERSION_RE = re.compile(r"^(latest|" + SEMVER_RE.pattern.strip("^$") + ")$")


@dataclass(frozen=True)
class ProgramConfig:
    name: str
    version: str = "latest"
    knobs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    source: str                      # file path, or "<built-in default>"
    listen: str = DEFAULT_LISTEN
    registry: str | None = None
    pin_root: str = DEFAULT_PIN_ROOT
    admin_socket: str = DEFAULT_ADMIN_SOCKET
    programs: dict = field(default_factory=dict)   # name -> ProgramConfig
    trusted_keys: tuple = ()                       # ed25519 public keys; set: only signed artifacts load


def builtin_program_names() -> list[str]:
    return sorted(d.name for d in BUILTIN_PROGRAMS_DIR.iterdir() if (d / "manifest.toml").is_file())


def default_config() -> Config:
    return Config("<built-in default>",
                  programs={n: ProgramConfig(n) for n in builtin_program_names()})


def parse_listen(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProblemsError([Problem(where, "listen", f"{value!r} is not HOST:PORT")])
    return host.strip("[]") or "127.0.0.1", int(port)


def parse(text: str, path: str) -> Config:
    try:
        doc = tomli.loads(text)
    except tomli.TOMLDecodeError as e:
        raise ProblemsError([Problem(path, "", f"not valid TOML: {e}")])
    problems: list[Problem] = []
    known = {"listen", "registry", "pin_root", "admin_socket", "programs", "trusted_keys"}
    for k in doc:
        if k not in known:
            problems.append(Problem(path, k, f"unknown field (expected one of: {', '.join(sorted(known))})"))
    for k in ("listen", "registry", "pin_root", "admin_socket"):
        if k in doc and not isinstance(doc[k], str):
            problems.append(Problem(path, k, f"expected a string, got {doc[k]!r}"))
    programs = {}
    table = doc.get("programs", {})
    if not isinstance(table, dict):
        problems.append(Problem(path, "programs", "expected a table of [programs.<name>] tables"))
        table = {}
    for name, spec in table.items():
        pc = _program(name, spec, path, problems)
        if pc is not None:
            programs[name] = pc
    keys = doc.get("trusted_keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        problems.append(Problem(path, "trusted_keys", "expected a list of public key file paths"))
        keys = []
    for i, k in enumerate(keys):
        if not Path(k).is_file():
            problems.append(Problem(path, f"trusted_keys[{i}]", f"{k}: no such file"))
    if "listen" in doc and isinstance(doc["listen"], str):
        try:
            parse_listen(doc["listen"], path)
        except ProblemsError as e:
            problems.extend(e.problems)
    if problems:
        raise ProblemsError(problems)
    return Config(path, doc.get("listen", DEFAULT_LISTEN), doc.get("registry"),
                  doc.get("pin_root", DEFAULT_PIN_ROOT), doc.get("admin_socket", DEFAULT_ADMIN_SOCKET),
                  programs, tuple(keys))


def _program(name: str, spec, path: str, problems: list) -> ProgramConfig | None:
    where = f"programs.{name}"
    if not re.match(r"^[a-z][a-z0-9_]*$", name):
        problems.append(Problem(path, where, f"{name!r} is not a program name"))
        return None
    if not isinstance(spec, dict):
        problems.append(Problem(path, where, "expected a table: { version = \"1.0.0\", knobs = {...} }"))
        return None
    before = len(problems)
    for k in spec:
        if k not in ("version", "enabled", "knobs"):
            problems.append(Problem(path, f"{where}.{k}", "unknown field (expected version, enabled, knobs)"))
    version = spec.get("version", "latest")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        problems.append(Problem(path, f"{where}.version", f"{version!r} is not \"latest\" or MAJOR.MINOR.PATCH"))
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(Problem(path, f"{where}.enabled", f"expected true or false, got {enabled!r}"))
    knobs = spec.get("knobs", {})
    if not isinstance(knobs, dict):
        problems.append(Problem(path, f"{where}.knobs", "expected a table of knob = value"))
        knobs = {}
    for k, v in knobs.items():
        if not isinstance(v, (int, bool)):
            problems.append(Problem(path, f"{where}.knobs.{k}", f"expected an integer or boolean, got {v!r}"))
    if len(problems) > before or enabled is False:
        return None
    return ProgramConfig(name, version, dict(knobs))


def load(path: str | None) -> Config:
    if path is None:
        return default_config()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ProblemsError([Problem(path, "", f"cannot read: {e}")])
    return parse(text, path)
