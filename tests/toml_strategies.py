"""Hypothesis strategies for TOML documents, and a small TOML writer for them (tomli only
reads). Shared by the property tests of the manifest and config parsers."""
from __future__ import annotations

import json
import math

from hypothesis import strategies as st

KEYS = st.text(min_size=1, max_size=12)
SCALARS = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=20),
    st.sampled_from(["counter", "gauge", "histogram", "log2", "linear", "syscall", "cpu", "comm",
                     "demo_total", "1.0.0", "counts", "hist", "tracepoint", "uint", ""]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)), max_leaves=10)


def toml_string(s: str) -> str:
    # JSON escapes are TOML escapes, except that TOML wants DEL escaped too (and json, with
    # ensure_ascii, would write surrogate pairs TOML refuses: keep non-ASCII as it is).
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_document(doc: dict) -> str:
    """Top-level keys as `key = value` lines (tables inline): any dict of TOML values."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


@st.composite
def mutated(draw, doc: dict, edits: int = 3, values=VALUES):
    """`doc` (a valid document) with a few random edits: a value replaced by one of `values`
    (any TOML value by default), a key removed, an unknown key added, at any depth (into
    tables and arrays of tables)."""
    doc = json.loads(json.dumps(doc))      # a deep copy (the documents have no dates)
    for _ in range(draw(st.integers(1, edits))):
        node = doc
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            containers = [(k, v) for k, v in children if isinstance(v, (dict, list)) and v]
            if not containers or draw(st.booleans()):
                break
            node = draw(st.sampled_from(containers))[1]
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if action == "add" or not keys:
            if isinstance(node, dict):
                node[draw(KEYS)] = draw(values)
            else:
                node.append(draw(values))
        elif action == "remove":
            del node[draw(st.sampled_from(keys))]
        else:
            node[draw(st.sampled_from(keys))] = draw(values)
    return doc
