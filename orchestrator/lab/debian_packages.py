"""scripts/debian-packages.txt, read: which Debian package provides each tool the code runs.

The file is the one list of what a bpfleet machine needs (setup.sh installs from it); this reader
gives the lab its "missing package" hints and the tests their check that every tool the code
runs is provided. Pure: text in, rows out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).resolve().parents[2] / "scripts" / "debian-packages.txt"
HOW = ("install", "base")


@dataclass(frozen=True)
class PackageRow:
    package: str
    how: str                    # "install": setup.sh installs it; "base": minimal Debian has it
    tools: tuple[str, ...]      # names on PATH, absolute paths, or py:module
    why: str
    line: int


def parse(text: str, source: str = "debian-packages.txt") -> list[PackageRow]:
    """Rows of the table; a malformed line raises ValueError naming file and line."""
    rows = []
    for n, raw in enumerate(text.splitlines(), 1):
        body, _, why = raw.partition("#")
        fields = body.split()
        if not fields:
            continue
        if len(fields) < 2 or fields[1] not in HOW:
            raise ValueError(f"{source}:{n}: expected 'PACKAGE install|base [TOOL...] # why', "
                             f"got {raw.strip()!r}")
        rows.append(PackageRow(fields[0], fields[1], tuple(fields[2:]), why.strip(), n))
    return rows


def load(path: Path = TABLE) -> list[PackageRow]:
    """The table next to this checkout; empty when bpfleet runs from an installed wheel."""
    try:
        return parse(path.read_text(), str(path))
    except FileNotFoundError:
        return []


def tool_packages(rows: list[PackageRow]) -> dict[str, str]:
    return {tool: row.package for row in rows for tool in row.tools}
