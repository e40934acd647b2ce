"""Bad inputs, each tried for real: each must fail with an error naming the file (and field)
to blame, and must not take the rest of the exporter down.

Two kinds:
- rejected by `bpfleet programs build` (manifest problems, manifest/BTF mismatches): asserted on
  its --json output, and the registry must not get the program;
- getting past the build (verifier rejection, attach types this kernel refuses, objects that
  are broken in the registry, config problems): enabled beside `syscalls` in a real exporter;
  /status, the self-metrics, --check and --strict must say what broke and syscalls must keep
  counting.

How the broken objects get into a registry: the registry verifies every file against
index.json, so a byte flipped after publishing is refused as a digest mismatch (tested as
"tampered"). To test what the loader does with an object that is broken *and* correctly
indexed - a build host that hashed already-corrupt output - the harness writes the version
directory and its index.json itself (publish_raw), with digests computed by the registry's own
scheme, next to a valid manifest.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import (TRACKER, Exporter, artifact_dir, build, builtin_version, copy_registry, deadline_poll,
                     publish_raw, run_bpfleet, tiny_program)

SYSCALLS = f"syscalls@{builtin_version('syscalls')}"

# ---- programs `programs build` accepts but the kernel refuses -----------------------------

# Out-of-bounds map value access: the value is 8 bytes, the offset up to 255.
VERIFIER_OOB = """
	{
		__u64 *v = bpf_map_lookup_elem(&verifier_bad_counts, &key);
		if (v && ((char *)v)[bpf_get_prandom_u32() & 0xff] == 42)
			return 1;
	}
"""

FAILS_AT_LOAD = {
    # name: (tiny_program kwargs, substrings the error must contain, verifier log substring)
    "verifier_bad": (dict(extra=VERIFIER_OOB), ["verifier_bad.bpf.o", "kernel refused to load"],
                     "invalid access to map value"),
    # This kernel refuses fentry/fexit and LSM programs (EPERM). libbpf can't probe for fentry
    # apart from tp_btf (both "tracing"), so that one fails at load; lsm is caught by the probe.
    "fentry_bad": (dict(section="fentry/do_nanosleep", program_type="tracing"),
                   ["fentry_bad.bpf.o", "kernel refused to load", "EPERM"], None),
    "lsm_bad": (dict(section="lsm/file_open", program_type="lsm"), ["lsm_bad"], None),
}


@pytest.fixture(scope="module")
def bad_registry(tmp_path_factory, registry) -> Path:
    """The session registry plus one program per load-time failure, under its own name."""
    tmp = tmp_path_factory.mktemp("bad")
    reg = copy_registry(registry, tmp / "registry")
    src = tmp / "src"
    dirs = [tiny_program(src, name, **kw) for name, (kw, _, _) in FAILS_AT_LOAD.items()]
    # A valid program, published, then used as the base of broken objects.
    good = tiny_program(src, "goodtiny")
    build(reg, *dirs, good)
    obj = (artifact_dir(reg, "goodtiny") / "goodtiny.bpf.o").read_bytes()
    manifest = (good / "manifest.toml").read_text()

    def raw(name: str, obj_bytes: bytes) -> None:
        publish_raw(reg, name, "1.0.0", {f"{name}.bpf.o": obj_bytes,
                                         "manifest.toml": manifest.replace('"goodtiny"', f'"{name}"')
                                         .replace("goodtiny_", f"{name}_").encode()})
        TRACKER.note_names(f"{name}_prog", f"{name}_counts")

    # Random bytes: no ELF magic, so they can't be mistaken for an object.
    raw("corrupt", b"\x00BPF" + os.urandom(len(obj) - 4))
    raw("truncated", obj[: len(obj) // 2])
    gcc_dir = tmp / "gcc"
    gcc_dir.mkdir()
    (gcc_dir / "x.c").write_text("int notbpf_prog(void) { return 42; }\n")
    subprocess.run(["gcc", "-c", "-O2", "-o", str(gcc_dir / "x.o"), str(gcc_dir / "x.c")], check=True)
    raw("notbpf", (gcc_dir / "x.o").read_bytes())
    # Built honestly, then one byte of the object changed in the registry.
    tampered = tiny_program(src, "tampered")
    build(reg, tampered)
    o = artifact_dir(reg, "tampered") / "tampered.bpf.o"
    data = bytearray(o.read_bytes())
    data[len(data) // 2] ^= 0xFF
    o.write_bytes(bytes(data))
    return reg


BROKEN_ARTIFACTS = {
    # name: substrings the error must contain
    "corrupt": ["corrupt/1.0.0/corrupt.bpf.o", "not a loadable BPF object"],
    "truncated": ["truncated/1.0.0/truncated.bpf.o", "not a loadable BPF object"],
    "notbpf": ["notbpf/1.0.0/notbpf.bpf.o", "not a loadable BPF object"],
    "tampered": ["tampered/1.0.0", "index.json", "does not match its digests", "tampered.bpf.o"],
}
ALL_BAD = {**{n: v[1] for n, v in FAILS_AT_LOAD.items()}, **BROKEN_ARTIFACTS}


@pytest.fixture(scope="module")
def mixed_exporter(module_exporters, bad_registry):
    """syscalls, exec and goodtiny (the unbroken twin of the bad tiny programs) beside every
    bad program."""
    progs = {"syscalls": {}, "exec": {}, "goodtiny": {}, **{n: {} for n in ALL_BAD}}
    e = module_exporters(progs, registry=bad_registry)
    e.wait_attached("syscalls", "exec", "goodtiny")
    return e


def test_control_program_works(mixed_exporter):
    """The template the bad programs come from loads and counts: they fail for their defect."""
    # A hash map: the series appears with the first call counted, so absent means "not yet".
    deadline_poll(lambda: mixed_exporter.metrics().value_or_zero("goodtiny_calls_total") > 0, 10,
                  what="goodtiny counting")


@pytest.mark.parametrize("name", sorted(ALL_BAD))
def test_bad_program_fails_alone(mixed_exporter, bad_registry, name):
    st = mixed_exporter.program(name)
    assert st is not None, f"{name} missing from /status"
    assert st["state"] == "failed", st
    assert st["version"] is None and st["digest"] is None, st
    assert st["load_errors"] >= 1, st
    for needle in ALL_BAD[name]:
        assert needle in st["error"], f"{needle!r} not in error: {st['error']!r}"
    # The error names a file inside this artifact's registry directory.
    assert str(bad_registry / name) in st["error"], st["error"]
    m = mixed_exporter.metrics()
    assert m.value("bpfleet_program_attached", program=name) == 0      # published, and 0
    assert m.value("bpfleet_program_load_errors_total", program=name) >= 1
    assert not m.has("bpfleet_program_info", program=name)
    assert not m.has(f"{name}_calls_total")
    # The rest is unharmed.
    assert m.value("bpfleet_program_attached", program="syscalls") == 1
    assert m.value("bpfleet_program_attached", program="exec") == 1
    assert mixed_exporter.program("syscalls")["state"] == "attached"


@pytest.mark.parametrize("name", ["corrupt", "truncated", "notbpf"])
def test_broken_object_error_says_why(mixed_exporter, bad_registry, name):
    """'Clear error': the reason libbpf gave (not an ELF file, not a BPF object, ...) must be in
    the message, not a bare errno. `programs check` already includes it."""
    err = mixed_exporter.program(name)["error"]
    reason = err.replace(str(bad_registry), "<registry>")
    assert "Unknown error" not in reason, err
    assert "elf" in reason.lower(), f"no reason from libbpf in: {err}"


def test_verifier_log_tail_in_status(mixed_exporter):
    st = mixed_exporter.program("verifier_bad")
    log = st["verifier_log"]
    assert log, st
    assert FAILS_AT_LOAD["verifier_bad"][2] in log, log
    assert "processed" in log and "insns" in log, "the verifier's closing summary is in the tail"
    assert len(log.splitlines()) <= 40, "the tail, not the whole log"


@pytest.mark.parametrize("name", ["verifier_bad", "fentry_bad"])
def test_load_error_names_failing_bpf_program(mixed_exporter, name):
    """An object can hold several BPF programs (biolatency has three): the error or the log
    tail must say which one the kernel refused."""
    st = mixed_exporter.program(name)
    text = f"{st['error']}\n{st['verifier_log'] or ''}"
    assert f"{name}_prog" in text, f"BPF program {name}_prog not named in:\n{text}"


def test_lsm_refused_names_requirement(mixed_exporter, bad_registry):
    """LSM programs are refused here; the exporter says so up front, naming the manifest field
    (or, if the probe passes, the object the kernel refused)."""
    err = mixed_exporter.program("lsm_bad")["error"]
    assert ("manifest.toml: requires.program_types" in err and "lsm" in err) or "lsm_bad.bpf.o" in err, err


def test_syscalls_keep_counting_beside_failures(mixed_exporter):
    # Nothing may have called getppid since this exporter started: its series appears with the
    # first call counted (before and during the wait, absent means "none counted yet").
    before = mixed_exporter.metrics().value_or_zero("syscalls_total", syscall="getppid")
    for _ in range(1000):
        os.getppid()
    deadline_poll(lambda: mixed_exporter.metrics().value_or_zero("syscalls_total", syscall="getppid")
                  - before >= 1000,
                  10, what="getppid counted")


def test_check_exits_nonzero_with_bad_program(tmp_path, bad_registry):
    good = Exporter(tmp_path / "good", bad_registry, {"syscalls": {}})
    r = subprocess.run(good.command("--check"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ok   {SYSCALLS}: attached" in r.stdout
    assert not os.path.exists(good.pin_root)

    bad = Exporter(tmp_path / "bad", bad_registry, {"syscalls": {}, "verifier_bad": {}})
    r = subprocess.run(bad.command("--check"), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"ok   {SYSCALLS}: attached" in r.stdout, r.stdout
    fail = [line for line in r.stdout.splitlines() if line.startswith("FAIL verifier_bad")]
    assert fail and "verifier_bad.bpf.o" in fail[0], r.stdout
    assert "invalid access to map value" in r.stdout, "the verifier log tail is printed"
    assert not os.path.exists(bad.pin_root)


def test_strict_exits_nonzero_with_bad_program(tmp_path, bad_registry):
    e = Exporter(tmp_path / "strict", bad_registry, {"syscalls": {}, "fentry_bad": {}}, extra_args=["--strict"])
    r = subprocess.run(e.command(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert '"ready"' not in r.stdout, "it must not start serving"
    assert "fentry_bad" in r.stderr and "--strict" in r.stderr, r.stderr
    assert not os.path.exists(e.pin_root), "pins removed on the way out"
    assert not os.path.exists(e.admin_socket)


# ---- rejected by `programs build` ---------------------------------------------------------

def _manifest(name: str, **over) -> str:
    fields = {"name": f'"{name}"', "version": '"1.0.0"', "description": '"bad"', "license": '"GPL-2.0"'}
    fields.update(over)
    top = "\n".join(f"{k} = {v}" for k, v in fields.items() if v is not None)
    return top + f"""
[requires]
program_types = ["raw_tracepoint"]

[[metrics]]
name = "{name}_calls_total"
type = "counter"
help = "test counter"
map = "{name}_counts"
"""


BUILD_FAILURES = {
    # dir name: (how to make it, field, message substring)
    "no_description": (dict(manifest=lambda n: _manifest(n, description=None)),
                       "description", "required field is missing"),
    "version_int": (dict(manifest=lambda n: _manifest(n, version="1")),
                    "version", "expected a string"),
    "version_bad": (dict(manifest=lambda n: _manifest(n, version='"1.0"')),
                    "version", "not a semantic version"),
    "type_mistyped": (dict(manifest=lambda n: _manifest(n).replace('type = "counter"', "type = 5")),
                      "metrics[0].type", "expected a string"),
    "no_such_map": (dict(manifest=lambda n: _manifest(n).replace(f'map = "{n}_counts"', 'map = "nope"')),
                    "metrics[0].map", "no map 'nope'"),
    "no_such_field": (dict(labels='labels.pid = { decoder = "uint" }'),
                      "metrics[0].labels.pid", "has no field 'pid'"),
    "bad_decoder": (dict(labels='labels.comm = { decoder = "port" }'),
                    "metrics[0].labels.comm.decoder", "decoder 'port' does not fit field 'comm'"),
}


@pytest.fixture(scope="module")
def build_failures(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("buildfail")
    reg = tmp / "registry"
    dirs = []
    for name, (how, _, _) in BUILD_FAILURES.items():
        kw = dict(how)
        man = kw.pop("manifest", None)
        d = tiny_program(tmp / "src", name, **kw)
        if man is not None:
            (d / "manifest.toml").write_text(man(name))
        dirs.append(d)
    results = build(reg, *dirs, expect_ok=False)
    return reg, {Path(r["source"]).name: r for r in results}


@pytest.mark.parametrize("name", sorted(BUILD_FAILURES))
def test_build_rejects(build_failures, name):
    reg, results = build_failures
    _, field, message = BUILD_FAILURES[name]
    r = results[name]
    assert r["status"] == "failed", r
    assert r["problems"], r
    hits = [p for p in r["problems"] if p["field"] == field and message in p["message"]]
    assert hits, f"no problem with field {field!r} and message {message!r}: {json.dumps(r['problems'], indent=2)}"
    assert all(p["file"].endswith(f"/{name}/manifest.toml") for p in hits), hits
    assert not (reg / name).exists(), "a failed build must not publish"


def test_build_failure_exit_code_and_text(tmp_path):
    d = tiny_program(tmp_path / "src", "no_such_map2")
    (d / "manifest.toml").write_text(_manifest("no_such_map2").replace('map = "no_such_map2_counts"', 'map = "nope"'))
    r = run_bpfleet("programs", "build", "--registry", str(tmp_path / "reg"), str(d))
    assert r.returncode == 1
    assert f"{d}/manifest.toml: metrics[0].map: no map 'nope'" in r.stderr, r.stderr


def test_programs_check_reports_broken_registry_entries(bad_registry):
    r = run_bpfleet("programs", "check", "--json", "--registry", str(bad_registry),
                    "corrupt", "notbpf", "tampered", "syscalls")
    assert r.returncode == 1
    report = {x["program"]: x for x in json.loads(r.stdout)}
    assert report[SYSCALLS]["ok"]
    for name in ("corrupt", "notbpf"):
        probs = report[f"{name}@1.0.0"]["problems"]
        assert probs and probs[0]["file"].endswith(f"{name}/1.0.0/{name}.bpf.o"), probs
    probs = report["tampered@1.0.0"]["problems"]
    assert probs and probs[0]["field"] == "index.json" and "tampered.bpf.o" in probs[0]["message"], probs


# ---- bad exporter configs -----------------------------------------------------------------

def test_config_unknown_knob(exporters):
    e = exporters({"syscalls": {"knobs": {"by_proces": True}}, "exec": {}})
    e.wait_attached("exec")
    st = e.program("syscalls")
    assert st["state"] == "failed", st
    assert str(e.config_path) in st["error"] and "programs.syscalls" in st["error"], st["error"]
    assert "knobs.by_proces" in st["error"] and "no knob 'by_proces'" in st["error"], st["error"]
    m = e.metrics()
    assert m.value("bpfleet_program_attached", program="syscalls") == 0
    assert m.value("bpfleet_program_load_errors_total", program="syscalls") >= 1
    assert m.value("bpfleet_program_attached", program="exec") == 1


def test_config_knob_out_of_range(exporters):
    e = exporters({"syscalls": {"knobs": {"target_pid": -1}}, "exec": {}})
    e.wait_attached("exec")
    st = e.program("syscalls")
    assert st["state"] == "failed" and "knobs.target_pid" in st["error"], st
    assert str(e.config_path) in st["error"], st["error"]


def test_config_missing_version(exporters):
    e = exporters({"syscalls": {"version": "9.9.9"}, "exec": {}})
    e.wait_attached("exec")
    st = e.program("syscalls")
    assert st["state"] == "failed" and "'9.9.9'" in st["error"] and SYSCALLS.split("@")[1] in st["error"], st


def test_config_bad_version_string_refused_at_start(tmp_path, registry):
    e = Exporter(tmp_path, registry, {"syscalls": {"version": "1.0"}, "exec": {}})
    r = subprocess.run(e.command(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{e.config_path}: programs.syscalls.version: '1.0' is not" in r.stderr, r.stderr
    assert '"ready"' not in r.stdout
    assert not os.path.exists(e.pin_root)


def test_config_bad_version_on_reload_keeps_serving(exporters):
    e = exporters({"syscalls": {}, "exec": {}})
    e.wait_attached("syscalls", "exec")
    e.write_config({"syscalls": {"version": "one"}, "exec": {}})
    code, body = e.admin("POST", "/reload")
    assert code == 422, body
    assert body["ok"] is False
    assert "programs.syscalls.version" in body["errors"], body
    assert "'one'" in body["errors"]["programs.syscalls.version"], body
    st = {p["name"]: p for p in e.status()["programs"]}
    assert st["syscalls"]["state"] == "attached" and st["exec"]["state"] == "attached", st
    assert e.metrics().value("bpfleet_program_attached", program="syscalls") == 1
