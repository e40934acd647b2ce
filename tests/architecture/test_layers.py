"""docs/architecture.md, enforced: layers, no cycles, no private names across modules, one module
per outside boundary, a pure core, small modules. Reads the source only (tests/architecture/
imports.py); every failure names the module and line."""
from __future__ import annotations

import sys

import pytest

from imports import PACKAGES, ROOT, cycles, graph, modules

LAYER = {"core": 0, "exporter": 1, "orchestrator": 2, "bpfleet": 3}

# outside library -> module prefixes that may import it (docs/architecture.md, rule 4)
BOUNDARIES = {
    "bcc": ("exporter.bcc",),
    "opentelemetry": ("exporter.otlp",),
    "ansible_runner": ("orchestrator.ansible.runner",),
    "ansible": ("orchestrator.ansible.runner",),
    "grafana_foundation_sdk": ("orchestrator.dashboards",),
    "rich": ("bpfleet",),
    "cryptography": ("core.signing",),
    "prometheus_client": ("bpfleet.top",),
    "subprocess": ("orchestrator.build", "orchestrator.packaging", "orchestrator.lab.system",
                   "orchestrator.ansible.runner", "exporter.daemon"),
}
# what the pure core may import besides itself and the stdlib's pure parts
CORE_IMPURE_STDLIB = {"subprocess", "socket", "http", "urllib", "ssl", "multiprocessing",
                      "asyncio", "selectors", "signal"}
CORE_THIRD_PARTY = {"tomli", "cryptography"}
# (module, import) pairs that use an impure module for its constants only
CORE_CONSTANTS_ONLY = {("core.listkinds", "socket")}     # AF_* numbers for the address-family list
MAX_LINES = 300


def _within(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _owner(target: str, known) -> str | None:
    while target not in known and "." in target:
        target = target.rsplit(".", 1)[0]
    return target if target in known else None


IMPORTS = graph()
KNOWN = modules()


def test_the_scan_sees_the_tree():
    # guards the rest: an empty or partial scan would pass every rule below
    assert {m.split(".")[0] for m in KNOWN} == set(PACKAGES)
    assert any(i.source == "exporter.collect" and i.target.startswith("core.") for i in IMPORTS)


def test_no_import_goes_up_a_layer():
    up = [f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS if not i.third_party
          and LAYER[i.target.split(".")[0]] > LAYER[i.source.split(".")[0]]]
    assert not up, "\n".join(up)


def test_no_cycles_between_modules():
    edges: dict[str, set[str]] = {}
    for i in IMPORTS:
        t = None if i.third_party else _owner(i.target, KNOWN)
        # a package importing its own submodules (re-exports) is not a dependency cycle
        if t and t != i.source and not t.startswith(i.source + "."):
            edges.setdefault(i.source, set()).add(t)
    found = cycles(edges)
    assert not found, "\n".join(" <-> ".join(c) for c in found)


def test_no_private_names_across_modules():
    private = [f"{i.source}:{i.line} takes {n} from {i.target}" for i in IMPORTS if not i.third_party
               for n in i.names if n.startswith("_") and not n.startswith("__")]
    assert not private, "\n".join(private)


def test_no_private_attributes_of_other_modules():
    """`mod._name` on a module of ours imported under any name is the same leak as importing it."""
    import ast
    leaks = []
    for mod, path in KNOWN.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for n in ast.walk(tree):
            if isinstance(n, ast.Import):
                for a in n.names:
                    if a.name in KNOWN and a.name != mod:
                        aliases[a.asname or a.name.split(".")[0]] = a.name
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                for a in n.names:
                    full = f"{n.module}.{a.name}"
                    if full in KNOWN and full != mod:
                        aliases[a.asname or a.name] = full
        for n in ast.walk(tree):
            if (isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in aliases
                    and n.attr.startswith("_") and not n.attr.startswith("__")):
                leaks.append(f"{mod}:{n.lineno} uses {aliases[n.value.id]}.{n.attr}")
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("library", sorted(BOUNDARIES))
def test_one_module_per_outside_boundary(library):
    stray = [f"{i.source}:{i.line}" for i in IMPORTS
             if i.third_party == library and not _within(i.source, BOUNDARIES[library])]
    assert not stray, f"only {BOUNDARIES[library]} may import {library}: " + ", ".join(stray)


def test_core_is_pure():
    stdlib = set(sys.stdlib_module_names)
    bad = [f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS
           if i.source.startswith("core") and i.third_party
           and (i.source, i.third_party) not in CORE_CONSTANTS_ONLY
           and (i.third_party in CORE_IMPURE_STDLIB
                or (i.third_party not in stdlib and i.third_party not in CORE_THIRD_PARTY))]
    assert not bad, "\n".join(bad)


def test_modules_are_small_or_say_why():
    long = []
    for mod, path in KNOWN.items():
        text = path.read_text()
        n = text.count("\n")
        if n > MAX_LINES and "Why long:" not in text[:3000]:
            long.append(f"{path.relative_to(ROOT)}: {n} lines")
    assert not long, "\n".join(long)
