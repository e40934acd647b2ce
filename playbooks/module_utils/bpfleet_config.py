# -*- coding: utf-8 -*-
"""The exporter config (TOML) as the host modules edit it: one marked block per entry
(`# BEGIN bpfleet <what> <name>` … `# END …`), so a module's edit never touches the settings
block the bpfleet_exporter role writes, nor any other program's or mitigation's entry.

A hand-written `[<table>.<name>]` (with its sub-tables) is replaced by the block too. Standard
library only (runs on the managed host)."""
from __future__ import annotations

import json
import os
import re


def markers(what: str, name: str) -> tuple[str, str]:
    return f"# BEGIN bpfleet {what} {name}", f"# END bpfleet {what} {name}"


def _header(table: str, name: str):
    return re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\.\s*{re.escape(name)}\s*(\.|\])")


def _split(lines: list[str], what: str, table: str, name: str) -> tuple[list[str], int | None]:
    """-> (the lines without the entry's marked block or hand-written table, where it was)."""
    (begin, end), header = markers(what, name), _header(table, name)
    out, skip, at = [], None, None
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
        if line.strip() == begin or header.match(line):
            skip = "block" if line.strip() == begin else "table"
            at = len(out) if at is None else at
            continue
        out.append(line)
    return out, at


def has_entry(lines: list[str], what: str, table: str, name: str) -> bool:
    return _split(lines, what, table, name)[1] is not None


def without_entry(lines: list[str], what: str, table: str, name: str) -> list[str]:
    """The lines without the entry's marked block or hand-written table (trailing blanks go)."""
    return _trimmed(_split(lines, what, table, name)[0])


def _trimmed(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {v!r} to TOML")


def read_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def set_entry(path: str, what: str, table: str, name: str, body: list[str] | None) -> bool:
    """Make the config at `path` hold `body` (the lines inside the markers) as the entry for
    `name`, in the place it had, or no entry at all (None). Written atomically, only if it
    changes. -> changed?"""
    old = read_lines(path)
    new, at = _split(old, what, table, name)
    if body is None or at is None:
        new = _trimmed(new)
    if body is not None:
        begin, end = markers(what, name)
        block = [begin, *body, end]
        new = new[:at] + block + new[at:] if at is not None else new + ([""] if new else []) + block
    if [l.rstrip() for l in new] == [l.rstrip() for l in old]:
        return False
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(new) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return True
