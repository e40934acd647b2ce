"""The bad-input corpus: every row is one distinct bad input - a manifest, a config, a BPF object
or registry artifact, an admin API request - with the exact error it must produce (the file or
endpoint, the field, a substring of the message), and none may crash anything: parsers return
problems instead of raising anything else, `bpfleet programs build` reports without a
traceback, a running exporter reports the bad program or request and keeps serving the rest,
and shuts down clean at the end.

The rows of tests/integration/test_bad_inputs.py belong to the corpus too; they are counted
from that file (test_corpus_size), not copied. docs/reliability.md states the total.
"""
from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from core import manifest as manifest_mod
from core.problems import ProblemsError
from exporter import config as config_mod
from harness import ROOT, TRACKER, Exporter, build, builtin_version, publish_raw, run_bpfleet, tiny_program

MANIFEST = "programs/demo/manifest.toml"
CONFIG = "/etc/bpfleet/exporter.toml"
SYSCALLS = f"syscalls@{builtin_version('syscalls')}"   # the built-in, as messages name it

HEADER = '''name = "demo"
version = "1.0.0"
description = "demo"
license = "GPL-2.0"

[knobs.sample_every]
default = 1
'''
COUNTER = '''
[[metrics]]
name = "demo_total"
type = "counter"
help = "h"
map = "counts"
'''


@dataclass(frozen=True)
class Row:
    id: str
    input: object          # text, a build recipe, a request: whatever the kind needs
    field: str             # the field the problem must name ("" for the whole file)
    message: str           # a substring of the message
    file: str = ""         # the file (or endpoint) the problem must name, where the kind has one
    status: int = 0        # admin API: the HTTP status


# ---------------------------------------------------------------- manifests, parsed

MANIFEST_PARSE = [
    Row("budget not a table", "budget = 5\n" + HEADER + COUNTER, "budget", "expected a table"),
    Row("budget without a limit", HEADER + "[budget]\n", "budget", "needs ns_per_event or cpu_share"),
    Row("budget unknown field", HEADER + "[budget]\nns_per_evnt = 5\n", "budget.ns_per_evnt",
        "unknown field (expected one of: cpu_share, degrade, ns_per_event)"),
    Row("budget ns_per_event zero", HEADER + "[budget]\nns_per_event = 0\n", "budget.ns_per_event",
        "must be a positive number, got 0"),
    Row("budget ns_per_event negative", HEADER + "[budget]\nns_per_event = -200\n", "budget.ns_per_event",
        "must be a positive number, got -200"),
    Row("budget ns_per_event string", HEADER + '[budget]\nns_per_event = "200ns"\n', "budget.ns_per_event",
        "expected an integer or a number, got str '200ns'"),
    Row("budget cpu_share infinite", HEADER + "[budget]\ncpu_share = inf\n", "budget.cpu_share",
        "must be a positive number, got inf"),
    Row("budget cpu_share nan", HEADER + "[budget]\ncpu_share = nan\n", "budget.cpu_share",
        "must be a positive number, got nan"),
    Row("budget cpu_share boolean", HEADER + "[budget]\ncpu_share = true\n", "budget.cpu_share",
        "expected an integer or a number, got bool True"),
    Row("degrade not a table", HEADER + '[budget]\nns_per_event = 1\ndegrade = "sample_every"\n',
        "budget.degrade", "expected a table"),
    Row("degrade without knob", HEADER + "[budget]\nns_per_event = 1\ndegrade = { values = [2] }\n",
        "budget.degrade.knob", "required field is missing"),
    Row("degrade unknown knob", HEADER + '[budget]\nns_per_event = 1\ndegrade = { knob = "rate", values = [2] }\n',
        "budget.degrade.knob", "no knob 'rate' (knobs: sample_every)"),
    Row("degrade without values", HEADER + '[budget]\nns_per_event = 1\ndegrade = { knob = "sample_every" }\n',
        "budget.degrade.values", "required field is missing"),
    Row("degrade empty values", HEADER + '[budget]\nns_per_event = 1\ndegrade = { knob = "sample_every", values = [] }\n',
        "budget.degrade.values", "give at least one value to step to"),
    Row("degrade value float", HEADER + '[budget]\nns_per_event = 1\ndegrade = { knob = "sample_every", values = [2, 2.5] }\n',
        "budget.degrade.values[1]", "expected an integer or boolean, got 2.5"),
    Row("degrade unknown field", HEADER + '[budget]\nns_per_event = 1\ndegrade = { knob = "sample_every", values = [2], step = 1 }\n',
        "budget.degrade.step", "unknown field (expected one of: knob, values)"),
    Row("max_series zero", HEADER + COUNTER + "max_series = 0\n", "metrics[0].max_series",
        "must be a positive integer, got 0"),
    Row("max_series string", HEADER + COUNTER + 'max_series = "10k"\n', "metrics[0].max_series",
        "expected an integer, got str '10k'"),
    Row("manifest not UTF-8 TOML", "name = \"demo\"\x00\n", "", "not valid TOML"),
]


@pytest.mark.parametrize("row", MANIFEST_PARSE, ids=lambda r: r.id)
def test_manifest_parse(row):
    m, problems = manifest_mod.parse(row.input, MANIFEST)
    assert m is None
    assert any(p.file == MANIFEST and p.field == row.field and row.message in p.message for p in problems), \
        [str(p) for p in problems]


# ---------------------------------------------------------------- configs, parsed

CONFIG_PARSE = [
    Row("breaker not a table", 'breaker = "on"\n', "breaker", "expected a table: [breaker]"),
    Row("breaker unknown field", "[breaker]\nwindow = 3\n", "breaker.window",
        "unknown field (expected one of: cooldown_seconds, enabled, interval_seconds, min_events, "
        "reenable, windows)"),
    Row("breaker enabled string", '[breaker]\nenabled = "yes"\n', "breaker.enabled", "expected true or false"),
    Row("breaker interval zero", "[breaker]\ninterval_seconds = 0\n", "breaker.interval_seconds",
        "expected a positive number of seconds, got 0"),
    Row("breaker interval string", '[breaker]\ninterval_seconds = "5s"\n', "breaker.interval_seconds",
        "expected a positive number of seconds, got '5s'"),
    Row("breaker windows zero", "[breaker]\nwindows = 0\n", "breaker.windows", "expected an integer >= 1, got 0"),
    Row("breaker windows float", "[breaker]\nwindows = 2.5\n", "breaker.windows", "expected an integer >= 1, got 2.5"),
    Row("breaker min_events boolean", "[breaker]\nmin_events = true\n", "breaker.min_events",
        "expected an integer >= 1, got True"),
    Row("breaker reenable unknown", '[breaker]\nreenable = "never"\n', "breaker.reenable",
        "'never' is not one of: 'manual', 'after'"),
    Row("breaker cooldown negative", "[breaker]\ncooldown_seconds = -60\n", "breaker.cooldown_seconds",
        "expected a positive number of seconds, got -60"),
    Row("program budget a number", "[programs.syscalls]\nbudget = 200\n", "programs.syscalls.budget",
        "expected a table like { ns_per_event = 500 }, or false"),
    Row("program budget true", "[programs.syscalls]\nbudget = true\n", "programs.syscalls.budget",
        "or false to turn the program's budget off; got True"),
    Row("program budget negative", "[programs.syscalls]\nbudget = { ns_per_event = -1 }\n",
        "programs.syscalls.budget.ns_per_event", "must be a positive number, got -1"),
    Row("program budget degrade empty",
        '[programs.syscalls]\nbudget = { degrade = { knob = "by_process", values = [] } }\n',
        "programs.syscalls.budget.degrade.values", "give at least one value to step to"),
    Row("program max_series zero", "[programs.syscalls]\nmax_series = 0\n", "programs.syscalls.max_series",
        "expected a positive integer"),
    Row("program max_series per metric string", '[programs.syscalls]\nmax_series = { syscalls_total = "many" }\n',
        "programs.syscalls.max_series.syscalls_total", "expected a positive integer"),
    Row("program max_series boolean", "[programs.syscalls]\nmax_series = true\n",
        "programs.syscalls.max_series", "got True"),
    Row("trusted key missing", 'trusted_keys = ["/nonexistent/release.pub"]\n', "trusted_keys[0]",
        "/nonexistent/release.pub: no such file"),
    Row("otlp endpoint without scheme", '[otlp]\nendpoint = "collector:4317"\n', "otlp.endpoint",
        "is not a URL with a scheme"),
    Row("otlp header value not a string", "[otlp]\nheaders = { authorization = 1 }\n",
        "otlp.headers.authorization", "expected a string, got 1"),
]


@pytest.mark.parametrize("row", CONFIG_PARSE, ids=lambda r: r.id)
def test_config_parse(row):
    with pytest.raises(ProblemsError) as e:
        config_mod.parse(row.input, CONFIG)
    assert any(p.file == CONFIG and p.field == row.field and row.message in p.message
               for p in e.value.problems), [str(p) for p in e.value.problems]


# ---------------------------------------------------------------- configs, given to a real exporter

CONFIG_START = [
    # The exporter refuses to start: exit code 2, the problem on stderr, nothing loaded.
    Row("breaker mistake at start", "[breaker]\nwindows = 0\n", "breaker.windows", "expected an integer >= 1"),
    Row("config file is a directory", None, "", "cannot read: [Errno 21] Is a directory"),
    Row("config file not UTF-8", b"listen = \"\xff\xfe\"\n", "", "cannot read: 'utf-8' codec can't decode"),
]


@pytest.mark.parametrize("row", CONFIG_START, ids=lambda r: r.id)
def test_config_refused_at_start(row, hard_registry, tmp_path):
    e = Exporter(tmp_path, hard_registry, {"syscalls": {}})
    if row.input is None:
        e.config_path.unlink()
        e.config_path.mkdir()
    elif isinstance(row.input, bytes):
        e.config_path.write_bytes(row.input)
    else:
        e.config_path.write_text(e.config_path.read_text() + row.input)
    r = subprocess.run(e.command(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    where = f"{e.config_path}: {row.field}: " if row.field else f"{e.config_path}: "
    assert where + row.message in r.stderr or (where in r.stderr and row.message in r.stderr), r.stderr
    assert "Traceback" not in r.stderr and '"ready"' not in r.stdout
    assert not os.path.exists(e.pin_root)


CONFIG_DEPLOY = [
    # The config parses, but names something the program does not have: that program fails
    # (reported with the config file and field), the others load.
    Row("degrade knob the program lacks",
        'budget = { ns_per_event = 100, degrade = { knob = "sample_every", values = [2] } }',
        "programs.syscalls.budget.degrade.knob", f"{SYSCALLS} has no knob 'sample_every'"),
    Row("max_series for a metric the program lacks", "max_series = { syscall_total = 10 }",
        "programs.syscalls.max_series.syscall_total", f"{SYSCALLS} has no metric 'syscall_total'"),
]


@pytest.mark.parametrize("row", CONFIG_DEPLOY, ids=lambda r: r.id)
def test_config_fails_one_program(row, hard_exporters):
    e = hard_exporters({"syscalls": {}, "exec": {}}, start=False)
    e.config_path.write_text(e.config_path.read_text().replace("[programs.syscalls]\n",
                                                               f"[programs.syscalls]\n{row.input}\n"))
    e.start()
    e.wait_attached("exec")
    st = e.program("syscalls")
    assert st["state"] == "failed", st
    assert f"{e.config_path}: {row.field}: {row.message}" in st["error"], st["error"]
    assert e.metrics().value("bpfleet_program_attached", program="exec") == 1


# ---------------------------------------------------------------- manifests and objects, built

BUILD = [
    # (what to change in a tiny program) -> `bpfleet programs build` refuses, naming the field
    Row("degrade value too big for the knob", ("knob_u8", '[budget]\nns_per_event = 1\n'
        'degrade = { knob = "level", values = [2, 300] }\n'), "budget.degrade.values[1]",
        "300 does not fit knob 'level' (unsigned 8-bit)"),
    Row("degrade knob not in the object", ("knob_u8", '[budget]\nns_per_event = 1\n'
        'degrade = { knob = "ghost", values = [1] }\n[knobs.ghost]\ndefault = 0\n'),
        "knobs.ghost", "no `const volatile` global 'ghost' in the object's .rodata"),
    Row("global that does not exist", ("manifest_extra", '\n[[metrics]]\nname = "x_gone_total"\n'
        'type = "counter"\nhelp = "h"\nglobal = "gone"\n'), "metrics[1].global", "no global variable 'gone'"),
    Row("histogram over a plain counter", ("manifest_replace", ('type = "counter"', 'type = "histogram"\n'
        'buckets = { scheme = "log2" }')), "metrics[0].buckets.field", "expected an array of u32/u64 counters"),
    Row("events map that is not a ring buffer", ("manifest_extra", '\n[[events]]\nmap = "NAME_counts"\n'),
        "events[0].map", "no ring buffer map 'NAME_counts'"),
    Row("program type not declared", ("manifest_replace", ('program_types = ["raw_tracepoint"]',
                                                           'program_types = ["tracepoint"]')),
        "requires.program_types", "the object has 'raw_tracepoint' programs; list 'raw_tracepoint' here"),
    Row("value field of a scalar", ("manifest_extra_metric", 'value = "count"'), "metrics[0].value",
        "has no field 'count'"),
    Row("per_cpu cpu on a plain hash", ("manifest_extra_metric", 'per_cpu = "cpu"'), "metrics[0].per_cpu",
        "is not a per-CPU map"),
]

KNOB_U8_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u8 level = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} NAME_counts SEC(".maps");

SEC("raw_tp/sys_enter")
int NAME_prog(void *ctx)
{
	__u32 k = level;
	__u64 one = 1;

	bpf_map_update_elem(&NAME_counts, &k, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _make_build_input(parent: Path, name: str, recipe) -> Path:
    kind, arg = recipe
    d = tiny_program(parent, name)
    m = d / "manifest.toml"
    if kind == "knob_u8":
        (d / f"{name}.bpf.c").write_text(KNOB_U8_SOURCE.replace("NAME", name))
        m.write_text(m.read_text().replace("[[metrics]]", '[knobs.level]\ndefault = 0\n\n[[metrics]]') + arg)
    elif kind == "manifest_extra":
        m.write_text(m.read_text() + arg.replace("NAME", name))
    elif kind == "manifest_extra_metric":
        m.write_text(m.read_text().rstrip("\n") + "\n" + arg + "\n")
    elif kind == "manifest_replace":
        old, new = arg
        assert old in m.read_text(), (old, m.read_text())
        m.write_text(m.read_text().replace(old, new))
    return d


@pytest.fixture(scope="module")
def build_results(tmp_path_factory, hard_session):
    tmp = tmp_path_factory.mktemp("corpus-build")
    dirs = {}
    for i, row in enumerate(BUILD):
        name = f"corpus_b{i}"
        dirs[name] = _make_build_input(tmp / "src", name, row.input)
    r = run_bpfleet("programs", "build", "--json", "--registry", str(tmp / "reg"), *map(str, dirs.values()))
    assert "Traceback" not in r.stderr, r.stderr
    results = {Path(x["source"]).name: x for x in json.loads(r.stdout)}
    return tmp / "reg", results


@pytest.mark.parametrize("i", range(len(BUILD)), ids=[r.id for r in BUILD])
def test_build_refuses(i, build_results):
    reg, results = build_results
    row, name = BUILD[i], f"corpus_b{i}"
    r = results[name]
    assert r["status"] == "failed", r
    want = row.message.replace("NAME", name)
    hits = [p for p in r["problems"] if p["field"] == row.field and want in p["message"]]
    assert hits, json.dumps(r["problems"], indent=2)
    assert all(p["file"].endswith(f"/{name}/manifest.toml") for p in hits), hits
    assert not (reg / name).exists()


# ---------------------------------------------------------------- artifacts in a registry

ARTIFACTS = [
    # The registry holds something broken; a real exporter must fail that program alone,
    # naming the file (relative to the artifact's directory) and field.
    Row("empty object", "empty_object", "", "not a loadable BPF object", file="corpus_a0/1.0.0/corpus_a0.bpf.o"),
    Row("object missing from the artifact", "missing_object", "index.json",
        "artifact does not match its digests (changed: corpus_a1.bpf.o)", file="corpus_a1/1.0.0"),
    Row("index.json not JSON", "index_garbage", "index.json",
        "artifact does not match its digests (changed: corpus_a2.bpf.o, manifest.toml)", file="corpus_a2/1.0.0"),
    Row("manifest not TOML", "manifest_garbage", "", "not valid TOML", file="corpus_a3/1.0.0/manifest.toml"),
    Row("manifest names a map the object lacks", "manifest_wrong_map", "metrics[0].map",
        "no map 'corpus_a4_gone' in the object", file="corpus_a4/1.0.0/manifest.toml"),
    Row("manifest missing from the artifact", "no_manifest", "", "cannot read",
        file="corpus_a5/1.0.0/manifest.toml"),
    Row("object is a text file", "text_object", "", "not a loadable BPF object",
        file="corpus_a6/1.0.0/corpus_a6.bpf.o"),
    Row("metric name taken by another program", "duplicate_metric", "metrics",
        f"metric syscalls_total is already exported by {SYSCALLS}", file="corpus_a7/1.0.0/manifest.toml"),
    Row("object without BTF", "no_btf", "", "BTF is required, but is missing or corrupted",
        file="corpus_a8/1.0.0/corpus_a8.bpf.o"),
    Row("version directory without index", "no_index", "", "program 'corpus_a9' is not in the registry",
        file="corpus_a9"),
]

NO_BTF_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

/* Built without -g: no BTF at all. */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__uint(key_size, 4);
	__uint(value_size, 8);
} NAME_counts SEC(".maps");

SEC("raw_tp/sys_enter")
int NAME_prog(void *ctx)
{
	unsigned int k = 0;
	unsigned long long one = 1;

	bpf_map_update_elem(&NAME_counts, &k, &one, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def artifact_registry(tmp_path_factory, hard_registry):
    """The hardening registry plus one broken artifact per ARTIFACTS row (corpus_a<i>)."""
    import shutil
    tmp = tmp_path_factory.mktemp("corpus-artifacts")
    reg = tmp / "registry"
    shutil.copytree(hard_registry, reg)
    good = tiny_program(tmp / "src", "corpus_good")
    build(reg, good)
    good_obj = (reg / "corpus_good" / "1.0.0" / "corpus_good.bpf.o").read_bytes()
    good_man = (good / "manifest.toml").read_text()
    for i, row in enumerate(ARTIFACTS):
        name = f"corpus_a{i}"
        TRACKER.note_names(f"{name}_prog", f"{name}_counts")
        man = good_man.replace("corpus_good", name)
        obj = good_obj
        how = row.input
        files = {f"{name}.bpf.o": obj, "manifest.toml": man.encode()}
        if how == "empty_object":
            files[f"{name}.bpf.o"] = b""
        elif how == "text_object":
            files[f"{name}.bpf.o"] = b"#!/bin/sh\necho not an object\n"
        elif how == "manifest_garbage":
            files["manifest.toml"] = b"name = \n[[[metrics\n"
        elif how == "manifest_wrong_map":
            files["manifest.toml"] = man.replace(f'map = "{name}_counts"', f'map = "{name}_gone"').encode()
        elif how == "no_manifest":
            del files["manifest.toml"]
        elif how == "duplicate_metric":
            files["manifest.toml"] = man.replace(f'name = "{name}_calls_total"', 'name = "syscalls_total"').encode()
        elif how == "no_btf":
            src = tmp / f"{name}.bpf.c"
            src.write_text(NO_BTF_SOURCE.replace("NAME", name))
            out = tmp / f"{name}.o"
            subprocess.run(["clang", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                            "-I", str(ROOT / "programs" / "include"), "-c", str(src), "-o", str(out)],
                           check=True)
            files[f"{name}.bpf.o"] = out.read_bytes()
        publish_raw(reg, name, "1.0.0", files)
        d = reg / name / "1.0.0"
        if how == "missing_object":
            (d / f"{name}.bpf.o").unlink()
        elif how == "index_garbage":
            (d / "index.json").write_text("{ not json")
        elif how == "no_index":
            (d / "index.json").unlink()
    return reg


@pytest.fixture(scope="module")
def artifact_exporter(artifact_registry, tmp_path_factory, hard_session):
    from hardening_harness import Exporters
    f = Exporters(tmp_path_factory.mktemp("corpus-exporter"), artifact_registry)
    progs = {"syscalls": {}, "corpus_good": {}, **{f"corpus_a{i}": {} for i in range(len(ARTIFACTS))}}
    e = f(progs)
    e.wait_attached("syscalls", "corpus_good")
    yield e
    f.stop_all()


@pytest.mark.parametrize("i", range(len(ARTIFACTS)), ids=[r.id for r in ARTIFACTS])
def test_broken_artifact_fails_alone(i, artifact_exporter, artifact_registry):
    row = ARTIFACTS[i]
    st = artifact_exporter.program(f"corpus_a{i}")
    assert st["state"] == "failed", st
    where = f"{artifact_registry}/{row.file}" + (f": {row.field}" if row.field else "")
    assert where in st["error"] and row.message in st["error"], (where, row.message, st["error"])
    m = artifact_exporter.metrics()
    assert m.value("bpfleet_program_attached", program=f"corpus_a{i}") == 0
    assert m.value("bpfleet_program_attached", program="syscalls") == 1
    assert m.value("bpfleet_program_attached", program="corpus_good") == 1


# ---------------------------------------------------------------- admin API requests

ADMIN = [
    # (method, path, body bytes or None, extra headers) -> status, and the error names the field
    Row("body not JSON", ("PUT", "/programs/syscalls", b"{version: 1.0.0}", {}), "body",
        "body: not JSON", status=400),
    Row("body a list", ("PUT", "/programs/syscalls", b"[]", {}), "body", "body: expected a JSON object", status=400),
    Row("body unknown field", ("PUT", "/programs/syscalls", b'{"verison": "1.0.0"}', {}), "body.verison",
        "body.verison: unknown field (expected one of: digest, knobs, version)", status=400),
    Row("version malformed", ("PUT", "/programs/syscalls", b'{"version": "1.0"}', {}), "body.version",
        "body.version: '1.0' is not \"latest\" or MAJOR.MINOR.PATCH", status=400),
    Row("knob value a float", ("PUT", "/programs/syscalls", b'{"knobs": {"target_pid": 1.5}}', {}),
        "body.knobs.target_pid", "body.knobs.target_pid: expected an integer or boolean, got 1.5", status=400),
    Row("digest malformed", ("PUT", "/programs/syscalls", b'{"digest": "sha256:abc"}', {}), "body.digest",
        "body.digest: expected a sha256 hex digest", status=400),
    Row("digest mismatch", ("PUT", "/programs/syscalls", json.dumps({"digest": "0" * 64}).encode(), {}),
        "digest", "digest mismatch: the registry has", status=422),
    Row("unknown knob", ("PUT", "/programs/syscalls", b'{"knobs": {"by_proces": true}}', {}),
        "programs.syscalls: knobs.by_proces", "syscalls has no knob 'by_proces'", status=422),
    Row("knob out of range", ("PUT", "/programs/syscalls", b'{"knobs": {"target_pid": -1}}', {}),
        "programs.syscalls: knobs.target_pid", "-1 does not fit a unsigned 32-bit knob", status=422),
    Row("version not in the registry", ("PUT", "/programs/syscalls", b'{"version": "9.9.9"}', {}),
        "", f"version '9.9.9' of syscalls is not in the registry (have: {builtin_version('syscalls')})", status=422),
    Row("program not in the registry", ("PUT", "/programs/nosuchprog", b"{}", {}), "",
        "program 'nosuchprog' is not in the registry", status=422),
    Row("program name malformed", ("PUT", "/programs/Sys-Calls", b"{}", {}), "path",
        "path: 'Sys-Calls' is not a program name", status=400),
    Row("path traversal", ("PUT", "/programs/..", b"{}", {}), "path", "path: '..' is not a program name",
        status=400),
    Row("body too large", ("PUT", "/programs/syscalls", b"{}", {"Content-Length": str(1 << 20)}), "body",
        "body larger than 65536 bytes", status=413),
    Row("content length not a number", ("PUT", "/programs/syscalls", b"{}", {"Content-Length": "two"}),
        "Content-Length", "Content-Length: 'two' is not a number", status=400),
    Row("unknown PUT endpoint", ("PUT", "/programs/syscalls/knobs", b"{}", {}), "",
        "no such endpoint: PUT /programs/syscalls/knobs", status=404),
    Row("unknown GET endpoint", ("GET", "/metrics", None, {}), "", "no such endpoint: GET /metrics", status=404),
    Row("method the path does not take", ("POST", "/programs/syscalls", b"{}", {}), "",
        "method POST is not allowed on /programs/syscalls (allowed: DELETE, PUT)", status=405),
    Row("DELETE what is not loaded", ("DELETE", "/programs/tcp", None, {}), "", "tcp is not loaded",
        status=404),
    Row("unsupported method", ("OPTIONS", "/programs/syscalls", b"{}", {}), "method", "Unsupported method",
        status=501),
    Row("not HTTP at all", ("RAW", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"), "request",
        "Bad request", status=400),
]


def _admin_raw(sock_path: str, method: str, path: str = "", body: bytes | None = None,
               headers: dict | None = None) -> tuple[int, str]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(sock_path)
    try:
        if method == "RAW":
            s.sendall(path)
        else:
            h = {"Host": "localhost", "Connection": "close"}
            if body is not None:
                h["Content-Type"] = "application/json"
                h["Content-Length"] = str(len(body))
            h.update(headers or {})
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
            s.sendall(head.encode() + (body or b""))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    status_line, _, rest = data.partition(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", status_line)
    if m is None:   # a request too broken to have a version gets an HTTP/0.9 reply: body only
        m = re.search(rb"Error code: (\d{3})", data)
        rest = data
    assert m, f"no HTTP status in reply: {data[:200]!r}"
    text = rest.decode(errors="replace")
    head, sep, body = text.partition("\r\n\r\n")
    if sep and "application/json" in head:
        return int(m.group(1)), json.loads(body)
    return int(m.group(1)), text


@pytest.fixture(scope="module")
def admin_exporter(hard_registry, tmp_path_factory, hard_session):
    from hardening_harness import Exporters
    f = Exporters(tmp_path_factory.mktemp("corpus-admin"), hard_registry)
    e = f({"syscalls": {}, "exec": {}})
    yield e
    f.stop_all()


@pytest.mark.parametrize("row", ADMIN, ids=lambda r: r.id)
def test_admin_request(row, admin_exporter):
    e = admin_exporter
    before = e.program("syscalls")
    code, reply = _admin_raw(e.admin_socket, *row.input)
    assert code == row.status, reply
    if isinstance(reply, dict):      # our JSON replies: the error names the field
        assert reply["ok"] is False and row.message in reply["error"] and row.field in reply["error"], reply
    else:                            # http.server's own error page
        assert row.message in reply, reply
    # Nothing changed, nothing crashed.
    assert e.alive()
    after = e.program("syscalls")
    assert after["state"] == "attached" and after["digest"] == before["digest"], after
    assert after["knobs"] == before["knobs"]
    assert e.get("/healthz")[0] == 200


# ---------------------------------------------------------------- the corpus as a whole

REFERENCED = ["FAILS_AT_LOAD", "BROKEN_ARTIFACTS", "BUILD_FAILURES"]


def referenced_rows() -> list[str]:
    """The bad inputs of tests/integration/test_bad_inputs.py: its tables' keys and its
    config tests, read from the source (not imported: pytest collects it on its own)."""
    path = ROOT / "tests" / "integration" / "test_bad_inputs.py"
    tree = ast.parse(path.read_text())
    rows = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for t in node.targets:
                if isinstance(t, ast.Name) and t.id in REFERENCED:
                    rows += [f"{t.id}:{k.value}" for k in node.value.keys]
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_config_"):
            rows.append(f"config:{node.name}")
    return rows


NEW_TABLES = {"manifests (parsed)": MANIFEST_PARSE, "configs (parsed)": CONFIG_PARSE,
              "configs (exporter start)": CONFIG_START, "configs (one program)": CONFIG_DEPLOY,
              "manifests and objects (build)": BUILD, "registry artifacts (exporter)": ARTIFACTS,
              "admin API requests": ADMIN}


def test_corpus_size_and_docs():
    ids = [r.id for rows in NEW_TABLES.values() for r in rows]
    assert len(ids) == len(set(ids)), "every row is a distinct input"
    referenced = referenced_rows()
    total = len(ids) + len(referenced)
    assert total >= 50, total
    doc = (ROOT / "docs" / "reliability.md").read_text()
    m = re.search(r"\*\*(\d+) bad inputs\*\*", doc)
    assert m and int(m.group(1)) == total, (
        f"docs/reliability.md says {m.group(1) if m else 'nothing'}; the corpus has {total} "
        f"({len(ids)} here + {len(referenced)} in tests/integration/test_bad_inputs.py)")
    for kind, rows in NEW_TABLES.items():
        assert f"| {kind} | {len(rows)} |" in doc, f"docs/reliability.md: no row '| {kind} | {len(rows)} |'"
    assert f"| tests/integration/test_bad_inputs.py | {len(referenced)} |" in doc
