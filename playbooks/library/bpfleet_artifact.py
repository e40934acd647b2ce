#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Ansible module: put one program artifact into a host's bpfleet registry, digest-checked.

Runs on the managed host with its own python3 (standard library only)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: bpfleet_artifact
short_description: Stage a bpfleet program artifact in the host's registry, verified by sha256
description:
  - Unpacks an artifact archive (made by the orchestrator from C(<registry>/<name>/<version>/))
    into C(<registry>/<name>/<version>/) on the host, after checking every file against the
    artifact's C(index.json) and the artifact digest against the one the orchestrator pinned.
  - An artifact whose files or digest do not match is refused and nothing is written.
  - A version already on the host is verified in place; one with a different digest is refused
    (a released version is immutable). Other versions are kept, so rollback works offline.
author: bpfleet
options:
  name: {type: str, required: true, description: The program.}
  version: {type: str, required: true, description: "The program version (MAJOR.MINOR.PATCH, semantic versioning)."}
  digest: {type: str, required: true, description: The artifact digest the orchestrator pinned (sha256 hex).}
  content:
    type: str
    description:
      - The artifact archive (a tar of the version directory), base64.
      - It travels with the module, so there is no copy step and no temporary file on the host.
      - Exactly one of O(content) and O(archive).
  archive: {type: path, description: "The path of the artifact archive on the host, instead of O(content)."}
  registry: {type: path, default: /var/lib/bpfleet/registry, description: "The host's registry directory."}
"""

EXAMPLES = r"""
- name: Stage syscalls 1.1.0, sent with the module
  bpfleet_artifact:
    name: syscalls
    version: 1.1.0
    digest: 9f2c1e0b7d4a5c3e8f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a
    content: "{{ lookup('ansible.builtin.file', 'syscalls-1.1.0.tar.b64') }}"

- name: Stage it from an archive already on the host
  bpfleet_artifact:
    name: syscalls
    version: 1.1.0
    digest: 9f2c1e0b7d4a5c3e8f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a
    archive: /tmp/syscalls-1.1.0.tar
"""

RETURN = r"""
digest: {type: str, returned: always, description: The verified artifact digest.}
path:
  description: The artifact directory on the host.
  type: str
  returned: always
  sample: /var/lib/bpfleet/registry/syscalls/1.1.0
"""

import base64
import binascii
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule

INDEX = "index.json"
SIGNATURE = "signature.ed25519"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")   # = core.names.SEMVER_RE (tests/core/test_names.py)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def problems_of(directory: str, want: str) -> list[str]:
    """What is wrong with an artifact directory, in the registry's own terms
    (core/registry.py: the digest is sha256 over sorted "<sha256>  <file>" lines)."""
    try:
        with open(os.path.join(directory, INDEX)) as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        return [f"no readable {INDEX}: {e}"]
    files = {n: sha256_file(os.path.join(directory, n)) for n in sorted(os.listdir(directory))
             if n not in (INDEX, SIGNATURE) and os.path.isfile(os.path.join(directory, n))}
    listed = index.get("files") or {}
    bad = sorted(n for n in set(files) | set(listed) if files.get(n) != listed.get(n))
    out = [f"files differ from {INDEX}: {', '.join(bad)}"] if bad else []
    text = "".join(f"{files[n]}  {n}\n" for n in sorted(files))
    actual = hashlib.sha256(text.encode()).hexdigest()
    if actual != index.get("digest"):
        out.append(f"{INDEX} says digest {index.get('digest')}, the files make {actual}")
    if actual != want:
        out.append(f"digest is {actual}, the orchestrator pinned {want}")
    return out


def unpack(archive, into: str) -> None:
    with tarfile.open(fileobj=archive) if not isinstance(archive, str) else tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if not m.isfile() or "/" in m.name or m.name.startswith("."):
                raise ValueError(f"unexpected archive member {m.name!r} (only plain files)")
        for m in tar.getmembers():
            src = tar.extractfile(m)
            with open(os.path.join(into, m.name), "wb") as out:
                shutil.copyfileobj(src, out)


ARGUMENT_SPEC = {
    "name": {"type": "str", "required": True},
    "version": {"type": "str", "required": True},
    "digest": {"type": "str", "required": True},
    "content": {"type": "str", "no_log": True},
    "archive": {"type": "path"},
    "registry": {"type": "path", "default": "/var/lib/bpfleet/registry"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=[("content", "archive")],
                           mutually_exclusive=[("content", "archive")], supports_check_mode=True)
    p = module.params
    ref = f"{p['name']}@{p['version']}"
    if not NAME_RE.match(p["name"]) or not VERSION_RE.match(p["version"]):
        module.fail_json(msg=f"{ref}: not a program name and semantic version")
    if not re.fullmatch(r"[0-9a-f]{64}", p["digest"]):
        module.fail_json(msg=f"{ref}: digest {p['digest']!r} is not a sha256 hex digest")
    dest = os.path.join(p["registry"], p["name"], p["version"])
    result = {"changed": False, "digest": p["digest"], "path": dest}
    if os.path.isdir(dest):
        bad = problems_of(dest, p["digest"])
        if bad:
            module.fail_json(msg=f"{ref}: the host already has {dest} and it does not match the "
                             f"pinned digest {p['digest'][:12]}: {'; '.join(bad)}. A released "
                             "version is immutable: refusing to use or replace it", **result)
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    if p["content"] is not None:
        try:
            source = io.BytesIO(base64.b64decode(p["content"], validate=True))
        except (binascii.Error, ValueError) as e:
            module.fail_json(msg=f"{ref}: content is not base64: {e}", **result)
    elif os.path.isfile(p["archive"]):
        source = p["archive"]
    else:
        module.fail_json(msg=f"{ref}: archive {p['archive']} is not on the host", **result)
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{p['version']}.", dir=parent)
    try:
        unpack(source, tmp)
        bad = problems_of(tmp, p["digest"])
        if bad:
            module.fail_json(msg=f"{ref}: artifact refused, it does not match its digest: "
                             f"{'; '.join(bad)}", **result)
        os.chmod(tmp, 0o755)
        os.rename(tmp, dest)
        tmp = None
    except (OSError, ValueError, tarfile.TarError) as e:
        module.fail_json(msg=f"{ref}: cannot stage the artifact: {e}", **result)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
