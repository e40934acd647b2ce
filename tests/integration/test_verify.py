"""`bpfleet programs verify`: the preflight — load into this kernel without attaching."""
from __future__ import annotations

import json

from harness import bpftool_json, build, copy_registry, run_bpfleet, tiny_program
from test_bad_inputs import VERIFIER_OOB


def loaded_names() -> set[str]:
    return {p.get("name") for p in bpftool_json("prog", "show")}


def test_verify_accepts_loads_nothing_and_rejects_with_the_log(tmp_path, registry):
    reg = copy_registry(registry, tmp_path / "registry")
    src = tmp_path / "src"
    build(reg, tiny_program(src, "verify_bad", extra=VERIFIER_OOB.replace("verifier_bad", "verify_bad")))

    ok = run_bpfleet("programs", "verify", "--registry", str(reg), "--json", "syscalls", "--knob", "by_process=1")
    assert ok.returncode == 0, ok.stderr
    res = json.loads(ok.stdout)
    assert res["ok"] and res["program"].startswith("syscalls@") and len(res["digest"]) == 64

    bad = run_bpfleet("programs", "verify", "--registry", str(reg), "--json", "verify_bad@1.0.0")
    assert bad.returncode == 1
    res = json.loads(bad.stdout)
    assert "kernel refused to load" in res["error"] and "verify_bad.bpf.o" in res["error"]
    assert "invalid access to map value" in res["verifier_log"]

    text = run_bpfleet("programs", "verify", "--registry", str(reg), "verify_bad@1.0.0")
    assert text.returncode == 1 and "FAIL  verify_bad@1.0.0" in text.stderr

    for args, why in ((["syscalls", "--knob", "nope=1"], "no knob 'nope'"),
                      (["syscalls", "--knob", "by_process"], "expected NAME=VALUE"),
                      (["nosuch@1.0.0"], "not in the registry")):
        r = run_bpfleet("programs", "verify", "--registry", str(reg), *args)
        assert r.returncode == 1 and why in r.stderr, (args, r.stderr)

    assert "verify_bad_prog" not in loaded_names(), "verify must leave nothing loaded"
