"""core.binding.bind: manifest + synthetic BTF records + MapInfo → ProgramPlan, or problems
that name the manifest file and field. Also upper_bounds for log2 and linear buckets."""
from __future__ import annotations

import math

import pytest

from core import binding as schema
from core.decoders import FieldKind
from core.manifest import BucketSpec, parse as parse_manifest
from core.binding import HistPlan, KnobPlan, Scalar, bind, upper_bounds
from synth_btf import HEADER, Btf, manifest, maps_dict

PATH = "programs/demo/manifest.toml"


def bind_ok(m, maps, records, program_types=()):
    plan, problems = bind(m, maps, records, list(program_types))
    assert problems == [], [str(p) for p in problems]
    assert plan is not None
    return plan


def bind_bad(m, maps, records, program_types=()):
    plan, problems = bind(m, maps, records, list(program_types))
    assert plan is None
    assert problems
    assert all(p.file == PATH for p in problems)
    return problems


def one_problem(problems):
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def counter(map_="counts", extra="", name="demo_total"):
    return f'''
[[metrics]]
name = "{name}"
type = "counter"
help = "h"
map = "{map_}"
{extra}
'''


def label_summary(plan, i=0):
    return [(lp.name, lp.offset, lp.size, lp.decoder) for lp in plan.metrics[i].labels]


# ---------------------------------------------------------------- fixtures: typical objects

@pytest.fixture
def b():
    return Btf()


@pytest.fixture
def proc_key(b):
    """struct proc_key { __u32 pid; char comm[16]; } (20 bytes), __u64 values, a hash map."""
    key = b.struct("proc_key", [("pid", b.u32), ("comm", b.array(b.char, 16))])
    return b.map("counts", "hash", key, b.u64)


# ---------------------------------------------------------------- labels

def test_labels_default_to_key_field_names(b, proc_key):
    plan = bind_ok(manifest(counter()), maps_dict(proc_key), b.records)
    (mp,) = plan.metrics
    assert label_summary(plan) == [("pid", 0, 4, "uint"), ("comm", 4, 16, "string")]
    assert mp.labels[0].field == FieldKind("int", 4, False)
    assert mp.labels[1].field == FieldKind("array", 16, is_char=True)
    assert mp.source == "counts" and not mp.is_global and mp.map_type == "hash" and not mp.percpu
    assert (mp.key_size, mp.value_size, mp.max_entries) == (20, 8, 1024)
    assert mp.value == Scalar(0, 8, False) and mp.hist is None and not mp.merges


def test_record_shapes_match_a_real_object(b):
    # programs/syscalls' key as libbpf reports it: char comm[16] at bit 0, __u32 syscall at bit 128.
    key = b.struct("proc_syscall_key", [("comm", b.array(b.char, 16)), ("syscall", b.u32)])
    r = b.records[key]
    assert (r.kind, r.name, r.size) == ("struct", "proc_syscall_key", 20)
    assert [(n, off, bits) for n, _t, off, bits in r.items] == [("comm", 0, 0), ("syscall", 128, 0)]
    arr = b.records[r.items[0][1]]
    assert (arr.kind, arr.size, arr.items) == ("array", 0, (b.char, 16))
    assert b.records[b.char].items == (1, 0, 8)          # signed char, as clang emits it


def test_nested_struct_fields_flatten_as_outer_inner(b):
    addr = b.struct("addr", [("ip", b.u32), ("port", b.u16)])
    key = b.struct("conn_key", [("local", addr), ("remote", addr), ("proto", b.u8)])
    info = b.map("conns", "lru_hash", key, b.u64)
    plan = bind_ok(manifest(counter("conns")), maps_dict(info), b.records)
    assert label_summary(plan) == [
        ("local_ip", 0, 4, "uint"), ("local_port", 4, 2, "uint"),
        ("remote_ip", 8, 4, "uint"), ("remote_port", 12, 2, "uint"),
        ("proto", 16, 1, "uint"),
    ]


def test_nested_field_can_be_renamed_by_its_flattened_name(b):
    addr = b.struct("addr", [("ip", b.u32), ("port", b.u16)])
    key = b.struct("conn_key", [("remote", addr)])
    info = b.map("conns", "hash", key, b.u64)
    m = manifest(counter("conns", 'labels.remote_ip = { name = "peer", decoder = "inet" }\n'
                                  'labels.remote_port = { drop = true }'))
    plan = bind_ok(m, maps_dict(info), b.records)
    assert label_summary(plan) == [("peer", 0, 4, "inet")]
    assert plan.metrics[0].merges


@pytest.mark.parametrize("key_of", [
    pytest.param(lambda b: b.u32, id="typedef u32"),
    pytest.param(lambda b: b.int("unsigned int", 4), id="plain int"),
    pytest.param(lambda b: b.const(b.u32), id="const u32"),
])
def test_scalar_key_is_a_label_named_key(b, key_of):
    info = b.map("counts", "percpu_array", key_of(b), b.u64, max_entries=512)
    plan = bind_ok(manifest(counter()), maps_dict(info), b.records)
    assert label_summary(plan) == [("key", 0, 4, "uint")]
    assert plan.metrics[0].percpu


def test_scalar_key_can_be_renamed_and_decoded(b):
    info = b.map("counts", "percpu_array", b.u32, b.u64, max_entries=512)
    m = manifest(counter(extra='labels.key = { name = "syscall", decoder = "syscall" }'))
    plan = bind_ok(m, maps_dict(info), b.records)
    assert label_summary(plan) == [("syscall", 0, 4, "syscall")]


def test_scalar_key_can_be_dropped(b):
    info = b.map("counts", "array", b.u32, b.u64)
    plan = bind_ok(manifest(counter(extra="labels.key = { drop = true }")), maps_dict(info), b.records)
    assert plan.metrics[0].labels == () and plan.metrics[0].merges


@pytest.mark.parametrize("labels, expected, merges", [
    ('labels.pid = { name = "tgid" }', [("tgid", 0, 4, "uint"), ("comm", 4, 16, "string")], False),
    ('labels.comm = { drop = true }', [("pid", 0, 4, "uint")], True),
    ('labels.pid = { drop = true }\nlabels.comm = { drop = true }', [], True),
    ('labels.pid = { decoder = "hex" }', [("pid", 0, 4, "hex"), ("comm", 4, 16, "string")], False),
    ('labels.comm = { decoder = "hex" }', [("pid", 0, 4, "uint"), ("comm", 4, 16, "hex")], False),
    ('labels.pid = { name = "process", decoder = "uint" }',
     [("process", 0, 4, "uint"), ("comm", 4, 16, "string")], False),
], ids=["rename", "drop", "drop all", "decoder int", "decoder array", "rename and decoder"])
def test_rename_drop_decoder(b, proc_key, labels, expected, merges):
    plan = bind_ok(manifest(counter(extra=labels)), maps_dict(proc_key), b.records)
    assert label_summary(plan) == expected
    assert plan.metrics[0].merges is merges


def test_static_decoder_options_reach_the_plan(b):
    key = b.struct("k", [("op", b.u8)])
    info = b.map("counts", "hash", key, b.u64)
    m = manifest(counter(extra='labels.op = { decoder = "static", values = { "0" = "read", "1" = "write" } }'))
    (lp,) = bind_ok(m, maps_dict(info), b.records).metrics[0].labels
    assert lp.decoder == "static" and lp.options["values"] == {"0": "read", "1": "write"}


def test_enum_key_field_defaults_to_enum_decoder(b):
    state = b.enum("tcp_state", {"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2})
    key = b.struct("k", [("state", state)])
    info = b.map("counts", "hash", key, b.u64)
    (lp,) = bind_ok(manifest(counter()), maps_dict(info), b.records).metrics[0].labels
    assert (lp.name, lp.decoder) == ("state", "enum")
    assert dict(lp.field.enum_values) == {1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT"}


def test_char_array_flagged_by_btf_int_char_is_a_string(b):
    key = b.struct("k", [("name", b.array(b.int("char8", 1, char=True), 8))])
    info = b.map("counts", "hash", key, b.u64)
    assert label_summary(bind_ok(manifest(counter()), maps_dict(info), b.records)) == [("name", 0, 8, "string")]


def test_u8_array_key_field_defaults_to_hex(b):
    key = b.struct("k", [("mac", b.array(b.u8, 6))])
    info = b.map("counts", "hash", key, b.u64)
    assert label_summary(bind_ok(manifest(counter()), maps_dict(info), b.records)) == [("mac", 0, 6, "hex")]


def test_u8_array_can_use_inet(b):
    key = b.struct("k", [("saddr", b.array(b.u8, 16))])
    info = b.map("counts", "hash", key, b.u64)
    m = manifest(counter(extra='labels.saddr = { decoder = "inet" }'))
    assert label_summary(bind_ok(m, maps_dict(info), b.records)) == [("saddr", 0, 16, "inet")]


def test_pointer_key_field_takes_ksym(b):
    key = b.struct("k", [("ip", b.ptr(b.u64))])
    info = b.map("counts", "hash", key, b.u64)
    m = manifest(counter(extra='labels.ip = { name = "function", decoder = "ksym" }'))
    assert label_summary(bind_ok(m, maps_dict(info), b.records)) == [("function", 0, 8, "ksym")]


@pytest.mark.parametrize("field_type, decoder, words", [
    (lambda b: b.array(b.char, 16), "syscall", ["decoder 'syscall' does not fit field 'f'", "char[16]"]),
    (lambda b: b.u64, "disk", ["decoder 'disk' does not fit", "u64"]),
    (lambda b: b.u32, "string", ["decoder 'string' does not fit", "char array"]),
    (lambda b: b.u32, "port", ["decoder 'port' does not fit"]),
    (lambda b: b.u32, "enum", ["decoder 'enum' does not fit", "expects an enum"]),
    (lambda b: b.u32, "static", ["decoder 'static' does not fit", '"values"']),
    (lambda b: b.u32, "nosuch", ["unknown decoder 'nosuch'", "known:", "uint", "syscall"]),
], ids=["syscall on char[16]", "disk on u64", "string on u32", "port on u32", "enum on u32",
        "static without values", "unknown decoder"])
def test_decoder_misfit_is_a_problem_at_the_decoder_field(b, field_type, decoder, words):
    key = b.struct("k", [("f", field_type(b))])
    info = b.map("counts", "hash", key, b.u64)
    m = manifest(counter(extra=f'labels.f = {{ decoder = "{decoder}" }}'))
    p = one_problem(bind_bad(m, maps_dict(info), b.records))
    assert p.field == "metrics[0].labels.f.decoder"
    assert all(w in p.message for w in words), p.message


def test_decoder_misfit_in_second_metric_names_it(b, proc_key):
    m = manifest(counter() + counter(extra='labels.comm = { decoder = "errno" }', name="other_total"))
    p = one_problem(bind_bad(m, maps_dict(proc_key), b.records))
    assert p.field == "metrics[1].labels.comm.decoder"


def test_unknown_key_field_lists_the_fields(b, proc_key):
    m = manifest(counter(extra='labels.tgid = { name = "task" }'))
    p = one_problem(bind_bad(m, maps_dict(proc_key), b.records))
    assert p.field == "metrics[0].labels.tgid"
    assert "has no field 'tgid'" in p.message and "(fields: pid, comm)" in p.message
    assert "'counts'" in p.message


def test_bitfield_key_field_must_be_dropped(b):
    # struct { __u32 flags:3; __u32 id; }: flags is a 3-bit bitfield at bit 0
    key = b.struct("k", [("flags", b.u32, 0, 3), ("id", b.u32, 32, 0)], size=8)
    info = b.map("counts", "hash", key, b.u64)
    p = one_problem(bind_bad(manifest(counter()), maps_dict(info), b.records))
    assert p.field == "metrics[0].labels.flags"
    assert "3-bit bitfield" in p.message and "drop = true" in p.message
    plan = bind_ok(manifest(counter(extra="labels.flags = { drop = true }")), maps_dict(info), b.records)
    assert label_summary(plan) == [("id", 4, 4, "uint")]


def test_union_key_field_cannot_be_a_label(b):
    u = b.struct("", [("v4", b.u32), ("raw", b.array(b.u8, 4))], union=True)
    key = b.struct("k", [("addr", u), ("port", b.u16)])
    info = b.map("counts", "hash", key, b.u64)
    p = one_problem(bind_bad(manifest(counter()), maps_dict(info), b.records))
    assert p.field == "metrics[0].labels.addr" and "union" in p.message


# ---------------------------------------------------------------- maps

def test_unknown_map_lists_the_maps_but_not_data_sections(b, proc_key):
    maps = maps_dict(proc_key)
    maps["events"] = type(proc_key)("events", "ringbuf", 0, 0, 4096, 0, 0)
    maps["demo.bss"] = type(proc_key)("demo.bss", "array", 4, 8, 1, 0, 0)
    p = one_problem(bind_bad(manifest(counter("cnts")), maps, b.records))
    assert p.field == "metrics[0].map"
    assert p.message == "no map 'cnts' in the object (maps: counts, events)"


def test_unknown_map_in_an_object_without_maps(b):
    p = one_problem(bind_bad(manifest(counter()), {}, b.records))
    assert "(maps: none)" in p.message


@pytest.mark.parametrize("map_type", ["ringbuf", "perf_event_array", "stack_trace", "prog_array"])
def test_map_types_that_cannot_be_metrics(b, proc_key, map_type):
    info = type(proc_key)("counts", map_type, 20, 8, 16, 0, 0)
    p = one_problem(bind_bad(manifest(counter()), {"counts": info}, b.records))
    assert p.field == "metrics[0].map"
    assert f"is a {map_type} map" in p.message and "percpu_hash" in p.message


@pytest.mark.parametrize("map_type", sorted(schema.METRIC_MAP_TYPES))
def test_every_metric_map_type_binds(b, map_type):
    info = b.map("counts", map_type, b.u32, b.u64)
    plan = bind_ok(manifest(counter()), maps_dict(info), b.records)
    assert plan.metrics[0].percpu == ("percpu" in map_type)


def test_map_without_btf_types_is_a_problem(b):
    info = type(b.map("x", "hash", b.u32, b.u64))("counts", "hash", 4, 8, 16, 0, 0)
    p = one_problem(bind_bad(manifest(counter()), {"counts": info}, b.records))
    assert p.field == "metrics[0].map" and "__type(key" in p.message


def test_per_cpu_cpu_needs_a_per_cpu_map(b, proc_key):
    p = one_problem(bind_bad(manifest(counter(extra='per_cpu = "cpu"')), maps_dict(proc_key), b.records))
    assert p.field == "metrics[0].per_cpu" and "not a per-CPU map" in p.message


def test_per_cpu_cpu_on_a_per_cpu_map(b):
    info = b.map("counts", "percpu_hash", b.u32, b.u64)
    plan = bind_ok(manifest(counter(extra='per_cpu = "cpu"')), maps_dict(info), b.records)
    assert plan.metrics[0].percpu and plan.metrics[0].spec.per_cpu == "cpu"


def test_dangling_btf_type_id_is_a_problem_not_a_crash(b):
    info = type(b.map("x", "hash", b.u32, b.u64))("counts", "hash", 4, 8, 16, 999, b.u64)
    p = one_problem(bind_bad(manifest(counter()), {"counts": info}, b.records))
    assert p.field == "" and "object BTF" in p.message and "999" in p.message


# ---------------------------------------------------------------- values

def test_struct_value_without_value_field_is_a_problem(b):
    val = b.struct("stats", [("packets", b.u64), ("bytes", b.u64)])
    info = b.map("counts", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(counter()), maps_dict(info), b.records))
    assert p.field == "metrics[0].value"
    assert "struct stats (packets, bytes)" in p.message and 'value = "..."' in p.message


@pytest.mark.parametrize("value, expected", [
    ("packets", Scalar(0, 8)),
    ("bytes", Scalar(8, 8)),
    ("errors", Scalar(16, 4)),
    ("drops", Scalar(20, 2, True)),
    ("nested.inner", Scalar(32, 8)),     # nested at 24 (8-aligned), inner 8 bytes into it
])
def test_value_picks_the_field_offset(b, value, expected):
    s16 = b.int("short", 2, signed=True)
    inner = b.struct("inner", [("pad", b.u32), ("inner", b.u64)])
    val = b.struct("stats", [("packets", b.u64), ("bytes", b.u64), ("errors", b.u32), ("drops", s16),
                             ("nested", inner)])
    info = b.map("counts", "hash", b.u32, val)
    plan = bind_ok(manifest(counter(extra=f'value = "{value}"')), maps_dict(info), b.records)
    assert plan.metrics[0].value == expected


def test_unknown_value_field_is_a_problem(b):
    val = b.struct("stats", [("packets", b.u64)])
    info = b.map("counts", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(counter(extra='value = "bytes"')), maps_dict(info), b.records))
    assert p.field == "metrics[0].value" and "has no field 'bytes'" in p.message


def test_non_integer_value_field_is_a_problem(b):
    val = b.struct("stats", [("slots", b.array(b.u64, 4))])
    info = b.map("counts", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(counter(extra='value = "slots"')), maps_dict(info), b.records))
    assert p.field == "metrics[0].value" and "expected an integer" in p.message


@pytest.mark.parametrize("vtype, expected", [
    (lambda b: b.u64, Scalar(0, 8, False)),
    (lambda b: b.u32, Scalar(0, 4, False)),
    (lambda b: b.s64, Scalar(0, 8, True)),
    (lambda b: b.s32, Scalar(0, 4, True)),
    (lambda b: b.u8, Scalar(0, 1, False)),
])
def test_scalar_value_size_and_sign(b, vtype, expected):
    info = b.map("counts", "hash", b.u32, vtype(b))
    assert bind_ok(manifest(counter()), maps_dict(info), b.records).metrics[0].value == expected


def test_array_value_without_value_field_is_a_problem(b):
    info = b.map("counts", "hash", b.u32, b.array(b.u64, 2))
    p = one_problem(bind_bad(manifest(counter()), maps_dict(info), b.records))
    assert p.field == "metrics[0].map" and "expected an integer" in p.message


# ---------------------------------------------------------------- histograms

def hist(map_="hists", buckets='{ scheme = "log2", field = "slots" }', extra=""):
    return f'''
[[metrics]]
name = "demo_latency_seconds"
type = "histogram"
help = "h"
map = "{map_}"
buckets = {buckets}
{extra}
'''


def test_histogram_slots_then_sum(b):
    val = b.struct("hist", [("slots", b.array(b.u64, 27)), ("sum", b.u64), ("bytes", b.u64)])
    key = b.struct("disk_op", [("dev", b.u32), ("op", b.u8)])
    info = b.map("hists", "hash", key, val)
    plan = bind_ok(manifest(hist(extra='sum = "sum"\nscale = 1e-6')), maps_dict(info), b.records)
    (mp,) = plan.metrics
    assert mp.value is None
    h = mp.hist
    assert (h.offset, h.elem_size, h.slots, h.sum) == (0, 8, 27, Scalar(216, 8))
    assert len(h.upper_bounds) == 26
    assert h.upper_bounds[:5] == pytest.approx((0, 1e-6, 2e-6, 4e-6, 8e-6))
    assert label_summary(plan) == [("dev", 0, 4, "uint"), ("op", 4, 1, "uint")]


def test_histogram_sum_before_u32_slots(b):
    val = b.struct("hist", [("sum", b.u64), ("slots", b.array(b.u32, 8))])
    info = b.map("hists", "percpu_array", b.u32, val)
    plan = bind_ok(manifest(hist(extra='sum = "sum"\nlabels.key = { drop = true }')), maps_dict(info),
                   b.records)
    h = plan.metrics[0].hist
    assert h == HistPlan(8, 4, 8, (0, 1, 2, 4, 8, 16, 32), Scalar(0, 8))
    assert plan.metrics[0].value_size == 40


def test_histogram_value_is_the_array_itself(b):
    info = b.map("hists", "array", b.u32, b.array(b.u64, 4))
    plan = bind_ok(manifest(hist(buckets='{ scheme = "log2" }')), maps_dict(info), b.records)
    assert plan.metrics[0].hist == HistPlan(0, 8, 4, (0, 1, 2), None)


def test_histogram_linear_buckets(b):
    val = b.struct("hist", [("slots", b.array(b.u32, 5))])
    info = b.map("hists", "hash", b.u32, val)
    m = manifest(hist(buckets='{ scheme = "linear", field = "slots", min = 10, width = 5 }'))
    assert bind_ok(m, maps_dict(info), b.records).metrics[0].hist.upper_bounds == (14, 19, 24, 29)


def test_histogram_slots_field_missing(b):
    val = b.struct("hist", [("counts", b.array(b.u64, 4))])
    info = b.map("hists", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(hist()), maps_dict(info), b.records))
    assert p.field == "metrics[0].buckets.field" and "has no field 'slots'" in p.message


@pytest.mark.parametrize("slots_type", [
    pytest.param(lambda b: b.u64, id="scalar"),
    pytest.param(lambda b: b.array(b.u8, 8), id="u8 array"),
    pytest.param(lambda b: b.array(b.u16, 8), id="u16 array"),
    pytest.param(lambda b: b.array(b.char, 8), id="char array"),
])
def test_histogram_slots_must_be_u32_or_u64_array(b, slots_type):
    val = b.struct("hist", [("slots", slots_type(b))])
    info = b.map("hists", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(hist()), maps_dict(info), b.records))
    assert p.field == "metrics[0].buckets.field" and "array of u32/u64 counters" in p.message


def test_histogram_sum_field_missing(b):
    val = b.struct("hist", [("slots", b.array(b.u64, 4))])
    info = b.map("hists", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(hist(extra='sum = "total"')), maps_dict(info), b.records))
    assert p.field == "metrics[0].sum" and "has no field 'total'" in p.message


def test_histogram_sum_must_be_an_integer(b):
    val = b.struct("hist", [("slots", b.array(b.u64, 4)), ("sum", b.array(b.u64, 2))])
    info = b.map("hists", "hash", b.u32, val)
    p = one_problem(bind_bad(manifest(hist(extra='sum = "sum"')), maps_dict(info), b.records))
    assert p.field == "metrics[0].sum" and "expected an integer" in p.message


def test_histogram_and_counter_from_one_map(b):
    # programs/biolatency: one map, a histogram from slots+sum and a counter from bytes
    val = b.struct("bio_hist", [("slots", b.array(b.u64, 27)), ("sum", b.u64), ("bytes", b.u64)])
    key = b.struct("disk_op", [("dev", b.u32), ("op", b.u8)])
    info = b.map("bio_hists", "hash", key, val)
    m = manifest(hist("bio_hists", extra='sum = "sum"') + counter("bio_hists", 'value = "bytes"', "bio_bytes_total"))
    plan = bind_ok(m, maps_dict(info), b.records)
    assert plan.metrics[1].value == Scalar(224, 8)
    assert plan.metrics[0].hist.sum == Scalar(216, 8)


# ---------------------------------------------------------------- globals, knobs, events

@pytest.fixture
def sections(b):
    """An object with .rodata knobs, .bss counters, a .data global and a ring buffer."""
    ro = b.datasec(".rodata", [("by_process", b.const_volatile(b.bool)),
                               ("target_pid", b.const_volatile(b.u32)),
                               ("threshold", b.const_volatile(b.s64))])
    bss = b.datasec(".bss", [("dropped", b.u64), ("retransmits", b.u64), ("depth", b.s32),
                             ("name", b.array(b.char, 8))])
    data = b.datasec(".data", [("generation", b.u32)])
    return {".rodata": ro, ".bss": bss, ".data": data}


def test_datasec_offsets_are_what_the_builder_says(b, sections):
    assert sections[".rodata"] == {"by_process": 0, "target_pid": 4, "threshold": 8}
    assert sections[".bss"] == {"dropped": 0, "retransmits": 8, "depth": 16, "name": 20}


def global_metric(name, global_, mtype="counter"):
    return f'''
[[metrics]]
name = "{name}"
type = "{mtype}"
help = "h"
global = "{global_}"
'''


@pytest.mark.parametrize("global_, mtype, section, value", [
    ("retransmits", "counter", ".bss", Scalar(8, 8)),
    ("depth", "gauge", ".bss", Scalar(16, 4, True)),
    ("generation", "gauge", ".data", Scalar(0, 4)),
])
def test_global_metrics(b, sections, global_, mtype, section, value):
    name = "demo_total" if mtype == "counter" else "demo_value"
    plan = bind_ok(manifest(global_metric(name, global_, mtype)), {}, b.records)
    (mp,) = plan.metrics
    assert mp.is_global and mp.source == section and mp.value == value
    assert mp.labels == () and mp.hist is None and mp.map_type == ""


def test_unknown_global_lists_the_globals(b, sections):
    p = one_problem(bind_bad(manifest(global_metric("demo_total", "retransmit")), {}, b.records))
    assert p.field == "metrics[0].global"
    assert "no global variable 'retransmit'" in p.message
    assert "by_process, depth, dropped, generation, name, retransmits, target_pid, threshold" in p.message


def test_unknown_global_in_an_object_without_globals(b):
    p = one_problem(bind_bad(manifest(global_metric("demo_total", "x")), {}, b.records))
    assert "(globals: none)" in p.message


def test_non_integer_global_is_a_problem(b, sections):
    p = one_problem(bind_bad(manifest(global_metric("demo_value", "name", "gauge")), {}, b.records))
    assert p.field == "metrics[0].global" and "expected an integer, found char[8]" in p.message


KNOBS = '''
[knobs.by_process]
default = true
[knobs.target_pid]
default = 42
[knobs.threshold]
default = -5
'''


def test_knobs_are_found_in_rodata(b, sections):
    plan = bind_ok(manifest(KNOBS), {}, b.records)
    assert plan.knobs == (
        KnobPlan("by_process", ".rodata", 0, 1, False, 1),
        KnobPlan("target_pid", ".rodata", 4, 4, False, 42),
        KnobPlan("threshold", ".rodata", 8, 8, True, -5),
    )
    assert all(type(k.default) is int for k in plan.knobs)


@pytest.mark.parametrize("knob", ["missing", "dropped", "generation"],
                         ids=["absent", "in .bss", "in .data"])
def test_knob_not_in_rodata_is_a_problem(b, sections, knob):
    p = one_problem(bind_bad(manifest(f"[knobs.{knob}]\ndefault = 0\n"), {}, b.records))
    assert p.field == f"knobs.{knob}"
    assert f"no `const volatile` global {knob!r} in the object's .rodata" == p.message


def test_knob_that_is_not_an_integer(b):
    b.datasec(".rodata", [("name", b.const_volatile(b.array(b.char, 8)))])
    p = one_problem(bind_bad(manifest("[knobs.name]\ndefault = 0\n"), {}, b.records))
    assert p.field == "knobs.name" and "expected an integer" in p.message


@pytest.fixture
def ringbuf(b):
    from exporter.libbpf import MapInfo
    return MapInfo("events", "ringbuf", 0, 0, 262144, 0, 0)


def test_ring_buffer_events_with_drops(b, sections, ringbuf):
    m = manifest('[[events]]\nmap = "events"\ndrops = "dropped"\n')
    plan = bind_ok(m, maps_dict(ringbuf), b.records)
    (ev,) = plan.events
    assert (ev.map, ev.drops, ev.drops_section) == ("events", Scalar(0, 8), ".bss")


def test_ring_buffer_events_without_drops(b, ringbuf):
    plan = bind_ok(manifest('[[events]]\nmap = "events"\n'), maps_dict(ringbuf), b.records)
    assert plan.events == (schema.EventPlan("events", None, ""),)


def test_events_map_missing_or_not_a_ring_buffer(b, proc_key, ringbuf):
    m = manifest('[[events]]\nmap = "counts"\n[[events]]\nmap = "nope"\n')
    problems = bind_bad(m, maps_dict(proc_key, ringbuf), b.records)
    assert [(p.field, p.message) for p in problems] == [
        ("events[0].map", "no ring buffer map 'counts' in the object"),
        ("events[1].map", "no ring buffer map 'nope' in the object"),
    ]


def test_events_drops_global_missing(b, sections, ringbuf):
    m = manifest('[[events]]\nmap = "events"\ndrops = "lost"\n')
    p = one_problem(bind_bad(m, maps_dict(ringbuf), b.records))
    assert p.field == "events[0].drops" and "no global variable 'lost'" in p.message


# ---------------------------------------------------------------- program types

REQUIRES = '[requires]\nprogram_types = ["tracepoint"]\n'


def test_declared_program_types_bind(b):
    bind_ok(manifest(REQUIRES), {}, b.records, ["tracepoint", "tracepoint"])


def test_undeclared_program_types_are_problems(b):
    problems = bind_bad(manifest(REQUIRES), {}, b.records, ["tracing", "tracepoint", "kprobe", "tracing"])
    assert [(p.field, p.message) for p in problems] == [
        ("requires.program_types", "the object has 'kprobe' programs; list 'kprobe' here"),
        ("requires.program_types", "the object has 'tracing' programs; list 'tracing' here"),
    ]


def test_declared_but_unused_program_type_is_fine(b):
    bind_ok(manifest('[requires]\nprogram_types = ["tracepoint", "lsm"]\n'), {}, b.records, ["tracepoint"])


# ---------------------------------------------------------------- all problems at once

def test_every_problem_is_reported_at_once(b, proc_key, sections):
    m = manifest(
        '[requires]\nprogram_types = []\n[knobs.nope]\ndefault = 1\n'
        + counter("missing")
        + counter(extra='labels.tgid = {}\nlabels.comm = { decoder = "port" }', name="b_total")
        + global_metric("c_total", "nothing")
        + '[[events]]\nmap = "ring"\n')
    problems = bind_bad(m, maps_dict(proc_key), b.records, ["tracepoint"])
    assert sorted(p.field for p in problems) == sorted([
        "requires.program_types", "knobs.nope", "metrics[0].map", "metrics[1].labels.tgid",
        "metrics[1].labels.comm.decoder", "metrics[2].global", "events[0].map",
    ])


def test_a_good_metric_next_to_a_bad_one_still_fails_the_plan(b, proc_key):
    m = manifest(counter() + counter("missing", name="b_total"))
    plan, problems = bind(m, maps_dict(proc_key), b.records, [])
    assert plan is None and [p.field for p in problems] == ["metrics[1].map"]


# ---------------------------------------------------------------- label name collisions (bugs)

def _all_problems(text, maps, records):
    m, problems = parse_manifest(HEADER + text, PATH)
    if m is None:
        return problems
    _plan, problems = bind(m, maps, records, [])
    return problems


def test_rename_onto_another_fields_default_name_is_a_problem(b):
    key = b.struct("k", [("pid", b.u32), ("tgid", b.u32)])
    info = b.map("counts", "hash", key, b.u64)
    problems = _all_problems(counter(extra='labels.tgid = { name = "pid" }'), maps_dict(info), b.records)
    assert any(p.field.startswith("metrics[0].labels") for p in problems), problems


@pytest.mark.parametrize("case", ["le on a histogram", "cpu with per_cpu = cpu"])
def test_labels_clashing_with_collector_labels_are_problems(b, case):
    if case == "le on a histogram":
        val = b.struct("hist", [("slots", b.array(b.u64, 4))])
        info = b.map("hists", "hash", b.u32, val)
        text = hist(extra='labels.key = { name = "le" }')
    else:
        key = b.struct("k", [("cpu", b.u32), ("id", b.u32)])
        info = b.map("counts", "percpu_hash", key, b.u64)
        text = counter(extra='per_cpu = "cpu"')
    problems = _all_problems(text, maps_dict(info), b.records)
    assert any(p.field.startswith("metrics[0]") for p in problems), problems


# ---------------------------------------------------------------- upper_bounds

def log2_slot(v: int, max_slots: int) -> int:
    """programs/include/bpfleet.h bpfleet_log2_slot(), in Python."""
    if v == 0:
        return 0
    s = (v - 1).bit_length() + 1
    return s if s < max_slots else max_slots - 1


@pytest.mark.parametrize("spec, slots, scale, expected", [
    (BucketSpec("log2", "slots"), 6, 1.0, (0, 1, 2, 4, 8)),
    (BucketSpec("log2", "slots"), 2, 1.0, (0,)),
    (BucketSpec("log2", "slots"), 3, 1.0, (0, 1)),
    (BucketSpec("log2", "slots"), 6, 1e-6, (0, 1e-6, 2e-6, 4e-6, 8e-6)),
    (BucketSpec("log2", "slots"), 6, 1e-9, (0, 1e-9, 2e-9, 4e-9, 8e-9)),
    (BucketSpec("linear", "slots", 0, 10), 4, 1.0, (9, 19, 29)),
    (BucketSpec("linear", "slots", 100, 5), 3, 1.0, (104, 109)),
    (BucketSpec("linear", "slots", 0, 1), 4, 1.0, (0, 1, 2)),
    (BucketSpec("linear", "slots", 0, 1000), 3, 1e-3, (0.999, 1.999)),
    (BucketSpec("linear", "slots", -10, 10), 3, 1.0, (-1, 9)),
], ids=["log2", "log2 2 slots", "log2 3 slots", "log2 us", "log2 ns", "linear", "linear min",
        "linear width 1", "linear scaled", "linear negative min"])
def test_upper_bounds(spec, slots, scale, expected):
    got = upper_bounds(spec, slots, scale)
    assert len(got) == slots - 1
    assert got == pytest.approx(expected)


def test_log2_bounds_match_bpfleet_log2_slot():
    slots = 27
    ub = upper_bounds(BucketSpec("log2", "slots"), slots, 1.0)
    assert ub[:6] == (0, 1, 2, 4, 8, 16)
    values = list(range(0, 5000)) + [2 ** k + d for k in range(12, 40) for d in (-1, 0, 1)]
    for v in values:
        s = log2_slot(v, slots)
        # v's slot is the first bucket whose inclusive bound holds it; the last slot is +Inf
        if s < slots - 1:
            assert v <= ub[s], (v, s)
        if s > 0:
            assert v > ub[s - 1], (v, s)


def test_log2_slot_port_matches_the_documented_examples():
    # docs/manifest.md: slot 1 = {1}, slot 2 = {2}, slot 3 = {3, 4}, slot 4 = {5…8}
    assert [log2_slot(v, 64) for v in range(10)] == [0, 1, 2, 3, 3, 4, 4, 4, 4, 5]


def test_linear_bounds_match_linear_slots():
    spec = BucketSpec("linear", "slots", 5, 10)
    slots = 6
    ub = upper_bounds(spec, slots, 1.0)
    for v in range(5, 120):
        s = min((v - 5) // 10, slots - 1)
        if s < slots - 1:
            assert v <= ub[s]
        if s > 0:
            assert v > ub[s - 1]


def test_upper_bounds_are_increasing_and_finite():
    for spec in (BucketSpec("log2", "slots"), BucketSpec("linear", "slots", 0, 3)):
        ub = upper_bounds(spec, 64, 1e-9)
        assert all(math.isfinite(x) for x in ub)
        assert all(a < b for a, b in zip(ub, ub[1:]))


def test_upper_bounds_single_slot():
    assert upper_bounds(BucketSpec("log2", "slots"), 1, 1.0) == ()


def test_fractional_linear_width_is_rejected_or_bounded_correctly(b):
    m, problems = parse_manifest(HEADER + hist(buckets='{ scheme = "linear", field = "slots", width = 0.5 }'),
                                 PATH)
    if problems:
        assert any(p.field == "metrics[0].buckets.width" for p in problems)
        return
    ub = upper_bounds(m.metrics[0].buckets, 4, 1.0)
    # slot i holds the integers in [i/2, (i+1)/2): slot 0 = {0}, slot 1 = {}, slot 2 = {1}
    assert ub[0] >= 0


# ---------------------------------------------------------------- property: any manifest edit

BIND_BASE = HEADER + '''
[requires]
program_types = ["tracepoint"]

[knobs.target_pid]
default = 0

[[metrics]]
name = "demo_total"
type = "counter"
help = "h"
map = "counts"
labels.comm = { name = "command" }
labels.op = { decoder = "static", values = { "0" = "read", "1" = "write" } }

[[metrics]]
name = "demo_latency_seconds"
type = "histogram"
help = "h"
map = "hists"
buckets = { scheme = "log2", field = "slots" }
sum = "sum"
scale = 1e-6

[[metrics]]
name = "demo_depth"
type = "gauge"
help = "h"
map = "depths"
per_cpu = "cpu"
labels.key = { decoder = "syscall" }

[[metrics]]
name = "demo_retransmits_total"
type = "counter"
help = "h"
global = "retransmits"

[[events]]
map = "events"
drops = "dropped"
type = "proc_key"

[budget]
ns_per_event = 500
'''


def test_any_edit_of_a_bindable_manifest_binds_or_is_reported():
    """Every field of a manifest that binds, edited at random (any TOML value, removed, added):
    parse and bind return a plan or problems naming the file, and never raise."""
    import tomli
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from toml_strategies import VALUES, mutated, toml_document

    b = Btf()
    key = b.struct("proc_key", [("pid", b.u32), ("op", b.u32), ("comm", b.array(b.char, 16))])
    hist_value = b.struct("hist", [("slots", b.array(b.u64, 27)), ("sum", b.u64)])
    b.datasec(".rodata", [("target_pid", b.const_volatile(b.u32))])
    b.datasec(".bss", [("dropped", b.u64), ("retransmits", b.u64)])
    maps = maps_dict(b.map("counts", "hash", key, b.u64), b.map("hists", "array", b.u32, hist_value),
                     b.map("depths", "percpu_array", b.u32, b.u64, max_entries=512),
                     type(b.map("x", "hash", b.u32, b.u64))("events", "ringbuf", 0, 0, 4096, 0, 0),
                     type(b.map("x", "hash", b.u32, b.u64))("demo.bss", "array", 4, 16, 1, 0, 0))
    base, problems = parse_manifest(BIND_BASE, PATH)
    assert problems == [] and bind(base, maps, b.records, ["tracepoint"])[1] == []
    outcomes = {"parse": 0, "bind": 0, "plan": 0}

    # Mostly names the object has, so that edits get past parsing and into binding.
    names = st.sampled_from(["counts", "hists", "depths", "events", "slots", "sum", "pid", "op",
                             "comm", "key", "retransmits", "dropped", "target_pid", "demo.bss", "log2",
                             "linear", "syscall", "string", "hex", "uint", "errno", "cpu", 0, 1, 27, 28,
                             -1, 2**40, 1e-6, True, "tracepoint", "raw_tracepoint"])
    values = st.one_of(names, names, names, VALUES)

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(doc=mutated(tomli.loads(BIND_BASE), edits=2, values=values))
    def check(doc):
        m, problems = parse_manifest(toml_document(doc), PATH)
        assert (m is None) == bool(problems)
        if m is None:
            outcomes["parse"] += 1
            return
        plan, problems = bind(m, maps, b.records, ["tracepoint"])
        assert (plan is None) == bool(problems)
        assert all(p.file == PATH and p.message for p in problems), problems
        outcomes["bind" if problems else "plan"] += 1
    check()
    assert outcomes["bind"] and outcomes["plan"], outcomes   # both paths were exercised
