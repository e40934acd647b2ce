"""What a name and a version look like, everywhere: manifests, configs, the admin API, the
registry. One definition each, so that no two places disagree.

The Ansible module playbooks/library/bpfleet_artifact.py runs on hosts without this package
and keeps a copy of NAME_RE and SEMVER_RE; tests/core/test_names.py checks it is the same.
"""
from __future__ import annotations

import re

# A program, mitigation, knob, variant or object stem: also a C, Python and Prometheus identifier.
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# Semantic versioning 2.0.0 without build metadata (it would not order, and "+" is awkward in paths).
SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
# What a config or a deploy asks for: a version, or the highest in the registry.
VERSION_RE = re.compile(r"^(latest|" + SEMVER_RE.pattern.strip("^$") + ")$")
# A C identifier (BPF program, struct) or a Prometheus label name.
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
METRIC_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")   # sha256, lower-case hex

VERSION_EXPECTED = '"latest" or MAJOR.MINOR.PATCH'


# The helpers use fullmatch: `$` alone would let a trailing newline through.
def is_name(value) -> bool:
    return isinstance(value, str) and NAME_RE.fullmatch(value) is not None


def is_semver(value) -> bool:
    return isinstance(value, str) and SEMVER_RE.fullmatch(value) is not None


def is_version(value) -> bool:
    """A version to ask for: "latest" or a semantic version."""
    return isinstance(value, str) and VERSION_RE.fullmatch(value) is not None


def is_ident(value) -> bool:
    return isinstance(value, str) and IDENT_RE.fullmatch(value) is not None


def is_digest(value) -> bool:
    return isinstance(value, str) and DIGEST_RE.fullmatch(value) is not None


def version_key(v: str) -> tuple:
    """Semantic version precedence: a pre-release sorts before its release; its dot-separated
    identifiers compare numerically when numeric, numbers before words. Not a version: first."""
    m = SEMVER_RE.fullmatch(v)
    if not m:
        return (-1,)
    major, minor, patch, pre = m.groups()
    ids = tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in pre[1:].split(".")) if pre else ()
    return (int(major), int(minor), int(patch), pre is None, ids)
