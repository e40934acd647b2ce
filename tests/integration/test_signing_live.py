"""An exporter with trusted_keys loads only artifacts signed by one of them, and says why not."""
from __future__ import annotations

import json

from harness import copy_registry, run_bpfleet


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
                    str(tmp_path / "missing.key"), "syscalls@1.0.0")
    assert r.returncode == 1 and "missing.key" in r.stderr and "not a readable PEM" in r.stderr
    r = run_bpfleet("programs", "keygen", str(tmp_path / "k"))
    assert r.returncode == 0
    r = run_bpfleet("programs", "keygen", str(tmp_path / "k"))
    assert r.returncode == 1 and "not overwriting" in r.stderr
