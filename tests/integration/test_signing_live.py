"""An exporter with trusted_keys loads only artifacts signed by one of them, and says why not."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from core import registry as reg
from harness import (TRACKER, artifact_digest, bpftool_json, build, builtin_version, copy_registry, run_bpfleet,
                     tiny_program)


def test_exporter_loads_signed_and_refuses_unsigned_or_tampered(tmp_path, exporters):
    registry = copy_registry(exporters.registry, tmp_path / "registry")
    keys = tmp_path / "keys"
    run_bpfleet("programs", "keygen", str(keys), check=True)
    run_bpfleet("programs", "sign", "--registry", str(registry), "--key", str(keys / "release.key"),
                "syscalls", "exec", check=True)
    # exec is signed, then its signature is tampered with; runqlat is never signed
    (sig,) = registry.glob("exec/*/signature.ed25519")
    raw = bytearray(bytes.fromhex(sig.read_text()))
    raw[-1] ^= 0xFF
    sig.write_text(raw.hex())

    e = exporters({"syscalls": {}, "exec": {}, "runqlat": {}}, registry=registry,
                  extra_config=f"trusted_keys = {json.dumps([str(keys / 'release.pub')])}")
    assert e.program("syscalls")["state"] == "attached"
    for name, why in (("exec", "signature does not match"), ("runqlat", "unsigned artifact")):
        status = e.program(name)
        assert status["state"] == "failed", status
        assert why in status["error"] and f"{registry}/{name}/" in status["error"], status["error"]
    m = e.metrics()
    assert m.value("bpfleet_program_attached", program="exec") == 0
    assert m.has("syscalls_total")


def test_sign_command_errors_are_clear(tmp_path, exporters):
    r = run_bpfleet("programs", "sign", "--registry", str(exporters.registry), "--key",
                    str(tmp_path / "missing.key"), f"syscalls@{builtin_version('syscalls')}")
    assert r.returncode == 1 and "missing.key" in r.stderr and "not a readable PEM" in r.stderr
    r = run_bpfleet("programs", "keygen", str(tmp_path / "k"))
    assert r.returncode == 0
    r = run_bpfleet("programs", "keygen", str(tmp_path / "k"))
    assert r.returncode == 1 and "not overwriting" in r.stderr


def tamper_consistently(registry: Path, name: str, version: str, work: Path) -> str:
    """The attack a signature exists to stop: someone who can write the registry swaps the
    object for their own (its BPF program is `<name>_evil`, so the kernel would show it if it
    ever loaded) and rewrites index.json so every digest matches again. The attacker's files
    come from a real build of the same name@version, so the index is exactly what a build
    writes; the signature file is left alone. -> the new digest."""
    src = tiny_program(work / "attacker-src", name, version)
    c = src / f"{name}.bpf.c"
    c.write_text(c.read_text().replace(f"int {name}_prog(", f"int {name}_evil("))
    TRACKER.note_names(f"{name}_evil")
    build(work / "attacker-registry", src)
    theirs, ours = work / "attacker-registry" / name / version, registry / name / version
    for f in ours.iterdir():
        if f.name != reg.SIGNATURE:
            f.unlink()
    for f in theirs.iterdir():
        if f.name != reg.SIGNATURE:
            shutil.copy(f, ours / f.name)
    reg.write_registry_index(registry)
    # a digest check alone passes: only the signature can tell
    return reg.resolve(registry, name, version).digest


def loaded_program_names() -> set[str]:
    return {p.get("name") for p in bpftool_json("prog", "show")}


def test_consistent_tamper_and_untrusted_key_are_refused_before_load(tmp_path, exporters):
    """Object and index.json rewritten together, and a valid signature by a key the exporter
    does not trust: both refused with the reason, neither program ever in the kernel."""
    registry, src = tmp_path / "registry", tmp_path / "src"
    build(registry, tiny_program(src, "sig_good"), tiny_program(src, "sig_tamper"),
          tiny_program(src, "sig_other"))
    run_bpfleet("programs", "keygen", str(tmp_path / "keys"), check=True)
    run_bpfleet("programs", "keygen", str(tmp_path / "other"), check=True)
    sign = ("programs", "sign", "--registry", str(registry), "--key")
    run_bpfleet(*sign, str(tmp_path / "keys/release.key"), "sig_good@1.0.0", "sig_tamper@1.0.0", check=True)
    run_bpfleet(*sign, str(tmp_path / "other/release.key"), "sig_other@1.0.0", check=True)
    signed_digest = artifact_digest(registry, "sig_tamper", "1.0.0")
    new_digest = tamper_consistently(registry, "sig_tamper", "1.0.0", tmp_path)
    assert new_digest != signed_digest

    e = exporters({n: {} for n in ("sig_good", "sig_tamper", "sig_other")}, registry=registry,
                  extra_config=f"trusted_keys = {json.dumps([str(tmp_path / 'keys/release.pub')])}")
    assert e.program("sig_good")["state"] == "attached"     # the key and the program do work
    for name in ("sig_tamper", "sig_other"):
        status = e.program(name)
        assert status["state"] == "failed", status
        assert f"{registry}/{name}/1.0.0" in status["error"], status["error"]
        assert "signature does not match" in status["error"], status["error"]
    assert new_digest[:12] in e.program("sig_tamper")["error"]
    assert e.metrics().value("bpfleet_program_attached", program="sig_tamper") == 0
    # the rollout preflight applies the same policy from the exporter's config, before loading
    v = run_bpfleet("programs", "verify", "--registry", str(registry), "--json", "sig_tamper@1.0.0",
                    "--exporter-config", str(e.config_path))
    assert v.returncode == 1 and "signature does not match" in json.loads(v.stdout)["error"], v.stdout
    loaded = loaded_program_names()
    assert "sig_good_prog" in loaded
    assert not loaded & {"sig_tamper_evil", "sig_tamper_prog", "sig_other_prog"}, loaded
