"""exporter.collect.MetricCollector: plans bound from synthetic BTF + hand-packed key/value bytes
(as a batch lookup returns them) → exposition Family; checked sample by sample and by parsing the
rendered text back with prometheus_client."""
from __future__ import annotations

import dataclasses
import importlib.util
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from promtool_batch import check_examples, needs_promtool

from core.binding import Scalar, bind
from exporter import collect
from exporter.collect import MetricCollector, scalar_format
from core import series
from exporter.exposition.text import le_label, render


def _load_synth_btf():
    path = Path(__file__).resolve().parent.parent / "core" / "synth_btf.py"
    spec = importlib.util.spec_from_file_location("bpfleet_tests_synth_btf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


synth = _load_synth_btf()
Btf, manifest, maps_dict = synth.Btf, synth.manifest, synth.maps_dict

GARBAGE = 0xEE   # what lies in a batch buffer past the n entries read, and in per-CPU padding


# ---------------------------------------------------------------- helpers

def plans(body, maps, b, program_types=()):
    plan, problems = bind(manifest(body), maps_dict(*maps), b.records, list(program_types))
    assert problems == [], [str(p) for p in problems]
    return plan.metrics


def collectors(body, maps, b, ncpus=1):
    return [MetricCollector(mp, ncpus) for mp in plans(body, maps, b)]


def family(c: MetricCollector, keys: list[bytes], values: list[bytes], spare: int = 3):
    """Feed one batch: `spare` entries of garbage follow the n real ones, like a buffer sized
    for max_entries."""
    assert all(len(k) == c.plan.key_size for k in keys)
    assert all(len(v) == c.value_stride for v in values)
    kb = b"".join(keys) + bytes([GARBAGE]) * (spare * c.plan.key_size)
    vb = b"".join(values) + bytes([GARBAGE]) * (spare * c.value_stride)
    return c.family(memoryview(kb), memoryview(vb), len(keys))


def plain(samples) -> list:
    """Samples with each label set as its text rendering, to compare with literals."""
    return [(suffix, ls.text, v) for suffix, ls, v in samples]


def text_samples(fam) -> list:
    """A family's samples as the text format writes them; histograms expand to _bucket/_sum/_count."""
    out = plain(fam.all_samples())
    for h in fam.histograms or []:
        for bound, cumulative in h.buckets:
            out.append(("_bucket", h.labels.with_label("le", le_label(bound)).text, cumulative))
        if h.sum is not None:
            out.append(("_sum", h.labels.text, h.sum))
        out.append(("_count", h.labels.text, h.count))
    return out


def samples(fam) -> dict:
    out = {}
    for suffix, labels, v in text_samples(fam):
        assert (suffix, labels) not in out, f"duplicate series {suffix}{labels}"
        out[(suffix, labels)] = v
    return out


def percpu(fmt: str, per_cpu_values: list, value_size: int) -> bytes:
    """One per-CPU value: each CPU's copy padded to 8 bytes (with garbage in the padding)."""
    stride = (value_size + 7) & ~7
    out = b""
    for v in per_cpu_values:
        one = struct.pack(fmt, *v) if isinstance(v, tuple) else struct.pack(fmt, v)
        assert len(one) == value_size
        out += one + bytes([GARBAGE]) * (stride - value_size)
    return out


def parse_text(fams):
    return {f.name: f for f in text_string_to_metric_families(render(fams).decode())}


def counter(map_="counts", extra="", name="demo_total", mtype="counter"):
    return f'''
[[metrics]]
name = "{name}"
type = "{mtype}"
help = "Demo help"
map = "{map_}"
{extra}
'''


def histogram(map_="hists", extra="", buckets='{ scheme = "log2", field = "slots" }'):
    return f'''
[[metrics]]
name = "demo_latency_seconds"
type = "histogram"
help = "Latency"
map = "{map_}"
buckets = {buckets}
{extra}
'''


@pytest.fixture
def b():
    return Btf()


@pytest.fixture
def proc(b):
    """hash map: struct { __u32 pid; char comm[16]; } → __u64"""
    key = b.struct("proc_key", [("pid", b.u32), ("comm", b.array(b.char, 16))])
    return b.map("counts", "hash", key, b.u64)


def pk(pid: int, comm: bytes) -> bytes:
    return struct.pack("<I16s", pid, comm)


# ---------------------------------------------------------------- scalars

def test_hash_u64_counter_with_struct_key(b, proc):
    (c,) = collectors(counter(), [proc], b)
    fam = family(c, [pk(1, b"bash"), pk(22, b"sshd")], [struct.pack("<Q", 10), struct.pack("<Q", 2**64 - 1)])
    assert (fam.name, fam.type, fam.help) == ("demo_total", "counter", "Demo help")
    assert plain(fam.all_samples()) == [("", '{pid="1",comm="bash"}', 10), ("", '{pid="22",comm="sshd"}', 2**64 - 1)]
    assert all(type(v) is int for _s, _l, v in fam.all_samples())


def test_scalar_key_label(b):
    info = b.map("counts", "hash", b.u32, b.u64)
    (c,) = collectors(counter(), [info], b)
    fam = family(c, [struct.pack("<I", 7), struct.pack("<I", 4000000000)], [struct.pack("<Q", 3)] * 2)
    assert samples(fam) == {("", '{key="7"}'): 3, ("", '{key="4000000000"}'): 3}


def test_hash_keeps_zero_values(b, proc):
    # A hash entry exists, so its series exists, even at 0 (a gauge that went back to 0).
    (c,) = collectors(counter(), [proc], b)
    assert samples(family(c, [pk(1, b"a")], [struct.pack("<Q", 0)])) == {("", '{pid="1",comm="a"}'): 0}


def test_array_map_skips_zero_slots(b):
    info = b.map("counts", "array", b.u32, b.u64, max_entries=4)
    (c,) = collectors(counter(), [info], b)
    keys = [struct.pack("<I", i) for i in range(4)]
    fam = family(c, keys, [struct.pack("<Q", v) for v in (0, 5, 0, 7)], spare=0)
    assert plain(fam.all_samples()) == [("", '{key="1"}', 5), ("", '{key="3"}', 7)]


def test_percpu_values_are_summed(b):
    info = b.map("counts", "percpu_array", b.u32, b.u64, max_entries=3)
    (c,) = collectors(counter(), [info], b, ncpus=3)
    assert c.value_stride == 24
    keys = [struct.pack("<I", i) for i in range(3)]
    values = [percpu("<Q", [1, 2, 3], 8), percpu("<Q", [0, 0, 0], 8), percpu("<Q", [0, 0, 9], 8)]
    assert samples(family(c, keys, values)) == {("", '{key="0"}'): 6, ("", '{key="2"}'): 9}


def test_percpu_hash_sum_keeps_zero_totals(b):
    info = b.map("counts", "percpu_hash", b.u32, b.u64)
    (c,) = collectors(counter(), [info], b, ncpus=2)
    assert samples(family(c, [struct.pack("<I", 1)], [percpu("<Q", [0, 0], 8)])) == {("", '{key="1"}'): 0}


def test_non_percpu_map_ignores_ncpus(b, proc):
    (c,) = collectors(counter(), [proc], b, ncpus=8)
    assert c.ncpus == 1 and c.value_stride == 8
    assert samples(family(c, [pk(1, b"x")], [struct.pack("<Q", 4)])) == {("", '{pid="1",comm="x"}'): 4}


def test_per_cpu_cpu_label(b):
    info = b.map("counts", "percpu_hash", b.u32, b.u64)
    (c,) = collectors(counter(extra='per_cpu = "cpu"'), [info], b, ncpus=4)
    keys = [struct.pack("<I", 1), struct.pack("<I", 2)]
    values = [percpu("<Q", [5, 0, 7, 0], 8), percpu("<Q", [0, 0, 0, 1], 8)]
    assert samples(family(c, keys, values)) == {
        ("", '{key="1",cpu="0"}'): 5, ("", '{key="1",cpu="2"}'): 7, ("", '{key="2",cpu="3"}'): 1,
    }


def test_per_cpu_cpu_label_with_scale_and_dropped_key(b):
    info = b.map("counts", "percpu_array", b.u32, b.u64, max_entries=2)
    (c,) = collectors(counter(extra='per_cpu = "cpu"\nscale = 0.5\nlabels.key = { drop = true }'), [info], b,
                      ncpus=2)
    keys = [struct.pack("<I", 0), struct.pack("<I", 1)]
    values = [percpu("<Q", [2, 4], 8), percpu("<Q", [6, 0], 8)]
    assert samples(family(c, keys, values)) == {("", '{cpu="0"}'): 4.0, ("", '{cpu="1"}'): 2.0}


def test_u32_values(b):
    info = b.map("counts", "hash", b.u32, b.u32)
    (c,) = collectors(counter(), [info], b)
    assert c.value_stride == 4
    fam = family(c, [struct.pack("<I", 1), struct.pack("<I", 2)],
                 [struct.pack("<I", 2**32 - 1), struct.pack("<I", 9)])
    assert samples(fam) == {("", '{key="1"}'): 2**32 - 1, ("", '{key="2"}'): 9}


def test_percpu_u32_values_skip_the_padding(b):
    info = b.map("counts", "percpu_hash", b.u32, b.u32)
    (c,) = collectors(counter(), [info], b, ncpus=3)
    assert c.value_stride == 24          # each CPU's 4 bytes rounded up to 8
    fam = family(c, [struct.pack("<I", 1)], [percpu("<I", [1, 2, 3], 4)])
    assert samples(fam) == {("", '{key="1"}'): 6}


@pytest.mark.parametrize("vtype, fmt, raw", [
    ("s64", "<q", [-5, 3]),
    ("s32", "<i", [-2**31, 1]),
    ("u64", "<Q", [2**63, 1]),
])
def test_signed_and_unsigned_values(b, vtype, fmt, raw):
    info = b.map("counts", "hash", b.u32, getattr(b, vtype))
    (c,) = collectors(counter(mtype="gauge", name="demo_value"), [info], b)
    fam = family(c, [struct.pack("<I", 0), struct.pack("<I", 1)], [struct.pack(fmt, v) for v in raw])
    assert samples(fam) == {("", '{key="0"}'): raw[0], ("", '{key="1"}'): raw[1]}


def test_signed_percpu_sum(b):
    info = b.map("counts", "percpu_array", b.u32, b.s32, max_entries=1)
    (c,) = collectors(counter(mtype="gauge", name="demo_value"), [info], b, ncpus=2)
    fam = family(c, [struct.pack("<I", 0)], [percpu("<i", [-7, 3], 4)])
    assert samples(fam) == {("", '{key="0"}'): -4}


def test_scale(b):
    info = b.map("counts", "hash", b.u32, b.u64)
    (c,) = collectors(counter(name="demo_seconds_total", extra="scale = 1e-9"), [info], b)
    fam = family(c, [struct.pack("<I", 1)], [struct.pack("<Q", 1_500_000_000)])
    ((suffix, labels, v),) = plain(fam.all_samples())
    assert labels == '{key="1"}' and v == pytest.approx(1.5)
    assert parse_text([fam])["demo_seconds"].samples[0].value == pytest.approx(1.5)


def test_value_field_of_a_struct_value(b):
    val = b.struct("stats", [("packets", b.u64), ("bytes", b.u32), ("errors", b.u32)])
    info = b.map("counts", "hash", b.u32, val)
    cs = collectors(counter(extra='value = "bytes"', name="bytes_total")
                    + counter(extra='value = "errors"', name="errors_total"), [info], b)
    v = struct.pack("<QII", 100, 2000, 3)
    assert samples(family(cs[0], [struct.pack("<I", 1)], [v])) == {("", '{key="1"}'): 2000}
    assert samples(family(cs[1], [struct.pack("<I", 1)], [v])) == {("", '{key="1"}'): 3}


def test_dropped_label_merges_series(b, proc):
    (c,) = collectors(counter(extra="labels.pid = { drop = true }"), [proc], b)
    keys = [pk(1, b"bash"), pk(2, b"bash"), pk(3, b"sshd"), pk(4, b"bash")]
    values = [struct.pack("<Q", v) for v in (1, 2, 4, 8)]
    assert samples(family(c, keys, values)) == {("", '{comm="bash"}'): 11, ("", '{comm="sshd"}'): 4}


def test_all_labels_dropped_gives_one_unlabelled_series(b):
    info = b.map("counts", "percpu_array", b.u32, b.u64, max_entries=3)
    (c,) = collectors(counter(extra="labels.key = { drop = true }"), [info], b, ncpus=2)
    keys = [struct.pack("<I", i) for i in range(3)]
    values = [percpu("<Q", [1, 1], 8), percpu("<Q", [0, 0], 8), percpu("<Q", [5, 0], 8)]
    assert plain(family(c, keys, values).all_samples()) == [("", "", 7)]


def test_enum_and_static_decoders(b):
    state = b.enum("state", {"STATE_UP": 1, "STATE_DOWN": 2})
    key = b.struct("k", [("state", state), ("dir", b.u8)])
    info = b.map("counts", "hash", key, b.u64)
    (c,) = collectors(counter(extra='labels.dir = { decoder = "static", values = { "0" = "in", "1" = "out" } }'),
                      [info], b)
    keys = [struct.pack("<IB3x", 1, 0), struct.pack("<IB3x", 2, 1), struct.pack("<IB3x", 9, 7)]
    fam = family(c, keys, [struct.pack("<Q", 1)] * 3)
    assert samples(fam) == {("", '{state="STATE_UP",dir="in"}'): 1, ("", '{state="STATE_DOWN",dir="out"}'): 1,
                            ("", '{state="9",dir="7"}'): 1}


def test_nested_key_and_hex_decoder(b):
    addr = b.struct("addr", [("ip", b.u32), ("port", b.u16)])
    key = b.struct("k", [("remote", addr)])
    info = b.map("counts", "hash", key, b.u64)
    (c,) = collectors(counter(extra='labels.remote_ip = { name = "ip", decoder = "inet" }\n'
                                    'labels.remote_port = { name = "port", decoder = "hex" }'), [info], b)
    fam = family(c, [bytes([10, 0, 0, 1]) + struct.pack("<H2x", 0xBEEF)], [struct.pack("<Q", 1)])
    assert samples(fam) == {("", '{ip="10.0.0.1",port="0xbeef"}'): 1}


def test_no_entries(b, proc):
    (c,) = collectors(counter(), [proc], b)
    fam = c.family(memoryview(b""), memoryview(b""), 0)
    assert (fam.name, fam.all_samples()) == ("demo_total", [])
    fam = family(c, [], [], spare=5)
    assert plain(fam.all_samples()) == []


def test_global_as_a_section_record(b):
    # exporter/load/co_re.py reads a global as one record of its section's map (key u32 0).
    bss = b.datasec(".bss", [("dropped", b.u64), ("depth", b.s32)])
    (mp,) = plans(counter(mtype="gauge", name="demo_depth").replace('map = "counts"', 'global = "depth"'), [], b)
    mp = dataclasses.replace(mp, key_size=4, value_size=16, max_entries=1, map_type="global")
    c = MetricCollector(mp, ncpus=4)
    fam = family(c, [struct.pack("<I", 0)], [struct.pack("<Qi4x", 99, -3)], spare=0)
    assert bss == {"dropped": 0, "depth": 8}
    assert plain(fam.all_samples()) == [("", "", -3)]
    # a zero global is still a sample: it is not an array slot
    assert plain(family(c, [struct.pack("<I", 0)], [bytes(16)], spare=0).all_samples()) == [("", "", 0)]


# ---------------------------------------------------------------- histograms

@pytest.fixture
def disk_hist(b):
    """hash map: struct { __u32 dev; __u8 op; } → struct { __u64 slots[6]; __u64 sum; __u64 bytes; }"""
    key = b.struct("disk_op", [("dev", b.u32), ("op", b.u8)])
    val = b.struct("hist", [("slots", b.array(b.u64, 6)), ("sum", b.u64), ("bytes", b.u64)])
    return b.map("hists", "hash", key, val)


def hist_value(slots, total, extra=0):
    return struct.pack("<6QQQ", *slots, total, extra)


LE_US = ["0.0", "1e-06", "2e-06", "4e-06", "8e-06", "+Inf"]


def test_histogram_buckets_are_cumulative(b, disk_hist):
    (c,) = collectors(histogram(extra='sum = "sum"\nscale = 1e-6\nlabels.dev = { decoder = "devt" }'),
                      [disk_hist], b)
    key = struct.pack("<IB3x", (8 << 20) | 16, 1)
    fam = family(c, [key], [hist_value([1, 2, 0, 3, 0, 4], 1000, 77)])
    base = 'dev="8:16",op="1"'
    expected = [("_bucket", f'{{{base},le="{le}"}}', n) for le, n in zip(LE_US, [1, 3, 3, 6, 6, 10])]
    expected += [("_sum", f"{{{base}}}", pytest.approx(0.001)), ("_count", f"{{{base}}}", 10)]
    assert text_samples(fam) == expected
    assert fam.type == "histogram"


def test_histogram_parses_back(b, disk_hist):
    (c,) = collectors(histogram(extra='sum = "sum"\nscale = 1e-6'), [disk_hist], b)
    keys = [struct.pack("<IB3x", 1, 0), struct.pack("<IB3x", 2, 1)]
    fam = family(c, keys, [hist_value([0, 0, 1, 0, 0, 0], 2), hist_value([5, 0, 0, 0, 0, 1], 100)])
    parsed = parse_text([fam])["demo_latency_seconds"]
    assert parsed.type == "histogram"
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in parsed.samples}
    assert got[("demo_latency_seconds_bucket", (("dev", "1"), ("le", "2e-06"), ("op", "0")))] == 1
    assert got[("demo_latency_seconds_bucket", (("dev", "1"), ("le", "1e-06"), ("op", "0")))] == 0
    assert got[("demo_latency_seconds_bucket", (("dev", "2"), ("le", "+Inf"), ("op", "1")))] == 6
    assert got[("demo_latency_seconds_count", (("dev", "2"), ("op", "1")))] == 6
    assert got[("demo_latency_seconds_sum", (("dev", "2"), ("op", "1")))] == pytest.approx(1e-4)
    assert len(parsed.samples) == 2 * (6 + 2)


def test_histogram_inf_bucket_equals_count(b, disk_hist):
    (c,) = collectors(histogram(extra='sum = "sum"'), [disk_hist], b)
    fam = family(c, [struct.pack("<IB3x", 1, 0)], [hist_value([3, 1, 4, 1, 5, 9], 0)])
    s = samples(fam)
    assert s[("_bucket", '{dev="1",op="0",le="+Inf"}')] == s[("_count", '{dev="1",op="0"}')] == 23
    assert s[("_sum", '{dev="1",op="0"}')] == 0


def test_histogram_sum_before_slots_percpu(b):
    val = b.struct("h", [("sum", b.u64), ("slots", b.array(b.u32, 4))])
    info = b.map("hists", "percpu_array", b.u32, val, max_entries=2)
    (c,) = collectors(histogram(extra='sum = "sum"'), [info], b, ncpus=2)
    assert c.value_stride == 48
    keys = [struct.pack("<I", 0), struct.pack("<I", 1)]
    values = [percpu("<Q4I", [(10, 1, 0, 0, 2), (5, 0, 1, 0, 0)], 24), percpu("<Q4I", [(0,) * 5] * 2, 24)]
    s = samples(family(c, keys, values))
    assert s == {
        ("_bucket", '{key="0",le="0.0"}'): 1, ("_bucket", '{key="0",le="1.0"}'): 2,
        ("_bucket", '{key="0",le="2.0"}'): 2, ("_bucket", '{key="0",le="+Inf"}'): 4,
        ("_sum", '{key="0"}'): 15.0, ("_count", '{key="0"}'): 4,
    }


def test_histogram_slots_then_sum_percpu_u32_with_padding(b):
    val = b.struct("h", [("slots", b.array(b.u32, 2)), ("sum", b.u32)])     # 12 bytes, 16 per CPU
    info = b.map("hists", "percpu_hash", b.u32, val)
    (c,) = collectors(histogram(extra='sum = "sum"\nscale = 2'), [info], b, ncpus=3)
    assert c.value_stride == 48
    values = [percpu("<3I", [(1, 0, 3), (0, 2, 4), (0, 0, 5)], 12)]
    s = samples(family(c, [struct.pack("<I", 9)], values))
    assert s == {
        ("_bucket", '{key="9",le="0.0"}'): 1, ("_bucket", '{key="9",le="+Inf"}'): 3,
        ("_sum", '{key="9"}'): 24.0, ("_count", '{key="9"}'): 3,
    }


def test_histogram_without_sum_has_no_sum_sample(b):
    info = b.map("hists", "array", b.u32, b.array(b.u64, 3), max_entries=1)
    (c,) = collectors(histogram(buckets='{ scheme = "log2" }'), [info], b)
    fam = family(c, [struct.pack("<I", 0)], [struct.pack("<3Q", 1, 1, 1)], spare=0)
    assert [s[0] for s in text_samples(fam)] == ["_bucket"] * 3 + ["_count"]
    assert "demo_latency_seconds" in parse_text([fam])


def test_histogram_linear_buckets(b):
    info = b.map("hists", "hash", b.u32, b.array(b.u64, 3))
    (c,) = collectors(histogram(buckets='{ scheme = "linear", min = 0, width = 10 }'), [info], b)
    fam = family(c, [struct.pack("<I", 1)], [struct.pack("<3Q", 1, 2, 3)])
    assert [(lbl, v) for _s, lbl, v in text_samples(fam)] == [
        ('{key="1",le="9.0"}', 1), ('{key="1",le="19.0"}', 3), ('{key="1",le="+Inf"}', 6), ('{key="1"}', 6)]


def test_histogram_skips_empty_rows(b, disk_hist):
    (c,) = collectors(histogram(extra='sum = "sum"'), [disk_hist], b)
    fam = family(c, [struct.pack("<IB3x", 1, 0)], [hist_value([0] * 6, 0, 5)])
    assert text_samples(fam) == []


def test_histogram_dropped_label_merges(b):
    # programs/runqlat: a per-CPU array of one histogram, key dropped
    val = b.struct("h", [("slots", b.array(b.u64, 4)), ("sum", b.u64)])
    info = b.map("hists", "percpu_array", b.u32, val, max_entries=2)
    (c,) = collectors(histogram(extra='sum = "sum"\nlabels.key = { drop = true }'), [info], b, ncpus=2)
    keys = [struct.pack("<I", 0), struct.pack("<I", 1)]
    values = [percpu("<5Q", [(1, 0, 0, 0, 0), (0, 1, 0, 0, 1)], 40),
              percpu("<5Q", [(0, 0, 0, 2, 100), (0, 0, 0, 0, 0)], 40)]
    assert samples(family(c, keys, values)) == {
        ("_bucket", '{le="0.0"}'): 1, ("_bucket", '{le="1.0"}'): 2, ("_bucket", '{le="2.0"}'): 2,
        ("_bucket", '{le="+Inf"}'): 4, ("_sum", ""): 101.0, ("_count", ""): 4,
    }


def test_histogram_and_counter_share_one_map(b, disk_hist):
    hc, cc = collectors(histogram(extra='sum = "sum"') + counter("hists", 'value = "bytes"', "bytes_total"),
                        [disk_hist], b)
    key, value = struct.pack("<IB3x", 1, 0), hist_value([0, 1, 0, 0, 0, 0], 1, 4096)
    assert samples(family(cc, [key], [value])) == {("", '{dev="1",op="0"}'): 4096}
    assert samples(family(hc, [key], [value]))[("_count", '{dev="1",op="0"}')] == 1


def test_per_cpu_cpu_on_a_histogram_is_rejected():
    """Histograms add the CPUs together; asking for a cpu label is a manifest mistake."""
    from core import manifest as manifest_mod
    text = synth.HEADER + histogram(buckets='{ scheme = "log2" }', extra='per_cpu = "cpu"')
    m, problems = manifest_mod.parse(text, "demo/manifest.toml")
    assert m is None
    assert [p.field for p in problems] == ["metrics[0].per_cpu"], problems


# ---------------------------------------------------------------- label values

@pytest.mark.parametrize("raw, value", [
    (b'say "hi"', 'say "hi"'),
    (b"back\\slash", "back\\slash"),
    (b"two\nlines", "two\nlines"),
    (b'\\"\n\\n', '\\"\n\\n'),
    (b"tab\there", "tab\there"),
    (b"caf\xc3\xa9", "café"),
    (b"bad\xffutf8", "bad\ufffdutf8"),
    (b"exactly16bytes!!", "exactly16bytes!!"),
    (b"", ""),
])
def test_label_values_are_escaped_and_parse_back(b, proc, raw, value):
    (c,) = collectors(counter(), [proc], b)
    comm = raw + b"\0" + b"\xee" * 15 if len(raw) < 16 else raw   # stale bytes after the NUL
    fam = family(c, [pk(1, comm[:16])], [struct.pack("<Q", 5)])
    ((_s, labels, v),) = fam.all_samples()
    assert labels.attributes == {"pid": "1", "comm": value}
    assert "\n" not in labels.text
    (parsed,) = parse_text([fam])["demo"].samples
    assert parsed.labels == {"pid": "1", "comm": value} and parsed.value == 5


def test_rendered_counter_family_parses_back(b, proc):
    (c,) = collectors(counter(), [proc], b)
    fam = family(c, [pk(1, b"a"), pk(2, b"b")], [struct.pack("<Q", 1), struct.pack("<Q", 2)])
    text = render([fam]).decode()
    assert text.startswith("# HELP demo_total Demo help\n# TYPE demo_total counter\n")
    parsed = parse_text([fam])["demo"]
    assert parsed.type == "counter"
    assert {s.labels["pid"]: s.value for s in parsed.samples} == {"1": 1, "2": 2}


# ---------------------------------------------------------------- the label cache

def test_label_cache_is_bounded(b, proc, monkeypatch):
    """Past the limit the cache keeps only the keys of the current scrape (the live ones)."""
    monkeypatch.setattr(series, "LABEL_CACHE_LIMIT", 3)
    (c,) = collectors(counter(), [proc], b)
    for round_ in range(3):  # every scrape brings 10 keys never seen before
        ids = range(round_ * 10, round_ * 10 + 10)
        keys = [pk(i, b"p%d" % i) for i in ids]
        values = [struct.pack("<Q", i + 1) for i in ids]
        fam = family(c, keys, values)
        assert c.cached_label_sets() <= 10
        assert plain(fam.all_samples()) == [("", f'{{pid="{i}",comm="p{i}"}}', i + 1) for i in ids]


def test_label_cache_is_bounded_with_cpu_labels(b, monkeypatch):
    monkeypatch.setattr(series, "LABEL_CACHE_LIMIT", 5)
    info = b.map("counts", "percpu_hash", b.u32, b.u64)
    (c,) = collectors(counter(extra='per_cpu = "cpu"'), [info], b, ncpus=4)
    for round_ in range(3):
        keys = [struct.pack("<I", round_ * 6 + i) for i in range(6)]
        values = [percpu("<Q", [1, 2, 3, 4], 8)] * 6
        s = samples(family(c, keys, values))
        assert len(s) == 24 and s[("", f'{{key="{round_ * 6 + 5}",cpu="3"}}')] == 4
        assert c.cached_label_sets() <= 24


def test_every_label_cache_stays_bounded_under_many_distinct_keys(b, proc, monkeypatch):
    """50,000 distinct keys in scrapes of 5,000 (pid and comm both new each time): the per-key
    cache and both per-field caches stay within the limit, and the output stays right."""
    limit = 2_000
    monkeypatch.setattr(series, "LABEL_CACHE_LIMIT", limit)
    (c,) = collectors(counter(), [proc], b)
    for round_ in range(10):
        ids = range(round_ * 5_000, (round_ + 1) * 5_000)
        keys = [pk(i, b"c%d" % i) for i in ids]
        fam = family(c, keys, [struct.pack("<Q", 1)] * len(keys))
        assert len(fam.all_samples()) == 5_000
        assert plain(fam.all_samples())[-1] == ("", f'{{pid="{ids[-1]}",comm="c{ids[-1]}"}}', 1)
        # Past the limit only the current scrape's keys stay (5,000 > limit here).
        assert c.cached_label_sets() <= 5_000
        assert all(len(memo) <= limit for memo in c.labels._by_field)


def test_label_cache_hits_do_not_change_output(b, proc):
    (c,) = collectors(counter(), [proc], b)
    keys, values = [pk(1, b"a")], [struct.pack("<Q", 1)]
    first = family(c, keys, values).all_samples()
    assert c.cached_label_sets() == 1
    assert family(c, keys, values).all_samples() == first


# ---------------------------------------------------------------- scalar_format

@pytest.mark.parametrize("scalars, stride, fmt", [
    ([Scalar(0, 8)], 8, "<Q"),
    ([Scalar(0, 4)], 8, "<I4x"),
    ([Scalar(8, 4, True)], 16, "<8xi4x"),
    ([Scalar(0, 1), Scalar(2, 2, True), Scalar(4, 4)], 8, "<B1xhI"),
    ([Scalar(0, 8), Scalar(8, 8, True)], 16, "<Qq"),
])
def test_scalar_format(scalars, stride, fmt):
    f = scalar_format(scalars, stride)
    assert f.format == fmt and f.size == stride


# ---------------------------------------------------------------- known bugs

def test_keys_decoding_to_equal_labels_are_merged(b):
    key = b.struct("k", [("op", b.u8)])
    info = b.map("counts", "hash", key, b.u64)
    (c,) = collectors(counter(extra='labels.op = { decoder = "static", values = '
                                    '{ "0" = "read", "1" = "write", "2" = "write" } }'), [info], b)
    fam = family(c, [struct.pack("<B", 0), struct.pack("<B", 1), struct.pack("<B", 2)], [struct.pack("<Q", 1)] * 3)
    assert sorted(plain(fam.all_samples())) == [("", '{op="read"}', 1), ("", '{op="write"}', 2)]


# ---------------------------------------------------------------- any key bytes (hypothesis)

# Bytes a kernel char array may hold: anything, weighted towards what breaks exposition text.
NASTY = st.sampled_from([b'"', b"\\", b"\n", b"\0", b"\xff", b"\xc3", b"\xc3\xa9", b"\xed\xa0\x80",
                         b"\\n", b"}", b"{", b",", b"=", b"#", b" ", b"\t", b"\r"])
COMM = st.lists(st.one_of(NASTY, st.binary(max_size=4)), max_size=10).map(
    lambda parts: b"".join(parts)[:16].ljust(16, b"\0"))


@needs_promtool
def test_any_key_bytes_render_as_valid_exposition():
    """Map keys straight from the kernel: comm arrays of any bytes (invalid UTF-8, quotes,
    backslashes, newlines, NULs), any pid, any u64 count, as a counter and a scaled gauge.
    prometheus_client reads every series back with the label the decoder made (text up to
    the first NUL, bad UTF-8 replaced; keys that decode alike added up), and promtool parses
    all 300 examples in one call."""
    b = Btf()
    key = b.struct("proc_key", [("pid", b.u32), ("comm", b.array(b.char, 16))])
    info = b.map("counts", "hash", key, b.u64)
    body = counter() + counter(name="demo_gauge", mtype="gauge", extra="scale = 1e-3")
    cs = collectors(body, [info], b)
    examples = []

    @settings(max_examples=300, deadline=None, database=None)
    @given(entries=st.dictionaries(st.tuples(st.integers(0, 2**32 - 1), COMM),
                                   st.integers(0, 2**64 - 1), max_size=8))
    def check(entries):
        keys = [pk(pid, comm) for pid, comm in entries]
        values = [struct.pack("<Q", v) for v in entries.values()]
        fams = [family(c, keys, values) for c in cs]
        expected: dict = {}
        for (pid, comm), v in entries.items():
            labels = (str(pid), comm.split(b"\0", 1)[0].decode("utf-8", "replace"))
            expected[labels] = expected.get(labels, 0) + v
        for parsed in parse_text(fams).values():
            got = {(s.labels["pid"], s.labels["comm"]): s.value for s in parsed.samples}
            scale = 1e-3 if parsed.type == "gauge" else 1
            assert got.keys() == expected.keys()
            assert all(got[k] == pytest.approx(v * scale, rel=1e-12) for k, v in expected.items())
        examples.append(fams)
    check()
    assert check_examples(examples) > 0
