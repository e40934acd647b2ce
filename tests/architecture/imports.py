"""The import graph of bpfleet's own packages, read from the source (no imports run).

Every import counts, including those inside functions: an import hidden in a function is still
a dependency, and hiding one is how cycles crept in before (docs/architecture.md)."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "exporter", "orchestrator", "bpfleet")


@dataclass(frozen=True)
class Import:
    source: str        # importing module, dotted
    target: str        # imported module (or module.name when the name is not a module)
    names: tuple       # names taken from it (from-imports)
    line: int
    third_party: str   # top-level name when the target is not one of ours, else ""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _absolute(mod: str, is_pkg: bool, level: int, target: str | None) -> str:
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> list[Import]:
    out = []
    for n in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(n, ast.Import):
            for a in n.names:
                out.append(_make(mod, a.name, (), n.lineno))
        elif isinstance(n, ast.ImportFrom):
            target = (_absolute(mod, path.name == "__init__.py", n.level, n.module) if n.level
                      else n.module)
            names = tuple(a.name for a in n.names)
            submodules = [f"{target}.{x}" for x in names if f"{target}.{x}" in known]
            for s in submodules:
                out.append(_make(mod, s, (), n.lineno))
            rest = tuple(x for x in names if f"{target}.{x}" not in known)
            if rest or not submodules:
                out.append(_make(mod, target, rest, n.lineno))
    return out


def _make(source: str, target: str, names: tuple, line: int) -> Import:
    top = target.split(".")[0]
    return Import(source, target, names, line, "" if top in PACKAGES else top)


def graph() -> list[Import]:
    known = modules()
    return [i for m, p in sorted(known.items()) for i in imports_of(m, p, known)]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]; counter[0] += 1
        stack.append(start); on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop(); on.discard(x); comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
            elif w not in index:
                index[w] = low[w] = counter[0]; counter[0] += 1
                stack.append(w); on.add(w)
                work.append((w, iter(sorted(edges.get(w, ())))))
            elif w in on:
                low[v] = min(low[v], index[w])
    return out
