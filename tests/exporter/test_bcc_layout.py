"""bcc tables exported like CO-RE maps: bcc's own Key/Leaf ctypes (bcc.BPF._decode_table_type,
the code bcc runs on a compiled module's table descriptions) → BTF-shaped records
(core/ctypes_layout.py) → schema.bind with the real disksnoop / tcpv4connect manifests →
the same MetricCollector that reads CO-RE maps, on bytes laid out as the kernel writes them.
No compile here (this host has no kernel headers); tests/kernel_matrix compiles them in a VM."""
from __future__ import annotations

import ctypes as C
import socket
import struct
from pathlib import Path

import pytest

from core import manifest, binding as schema
from core.ctypes_layout import Records
from prometheus_client.parser import text_string_to_metric_families

from core.series import labels
from exporter.collect import MetricCollector
from exporter.exposition.text import render
from exporter.libbpf import MapInfo

bcc = pytest.importorskip("bcc", reason="python3-bpfcc is not installed")
PROGRAMS = Path(__file__).resolve().parents[2] / "programs"
# What bcc's clang frontend emits for the tables of programs/*/…bcc.c (bpf_table_key_desc /
# bpf_table_leaf_desc): [name, [[field, type(, [n])]...], "struct"].
DISK_KEY = ["disk_key", [["op", "unsigned int"]], "struct"]
DISK_HIST = ["disk_hist", [["slots", "unsigned long long", [66]], ["sum", "unsigned long long"],
                           ["bytes", "unsigned long long"]], "struct"]
# bcc names the padding it makes explicit __pad_<n> / __pad_end: not labels
CONN_KEY = ["conn_key", [["daddr", "unsigned int"], ["dport", "unsigned short"],
                         ["__pad_end", "char", [2]]], "struct"]


def bind(program: str, tables: dict):
    m, problems = manifest.load(str(PROGRAMS / program / "manifest.toml"))
    assert problems == [] and m.bcc is not None
    recs, maps = Records(), {}
    for name, (mtype, key, leaf, entries) in tables.items():
        K, L = (bcc.BPF._decode_table_type(d) for d in (key, leaf))
        maps[name] = MapInfo(name, mtype, C.sizeof(K), C.sizeof(L), entries, recs.add(K), recs.add(L))
    plan, problems = schema.bind(m, maps, recs.records, [])
    assert problems == [], problems
    return plan


def test_disksnoop_tables_bind_and_export_like_core_maps():
    plan = bind("disksnoop", {"disk_io": ("hash", DISK_KEY, DISK_HIST, 64),
                              "start": ("hash", "unsigned long long", "unsigned long long", 10240)})
    hist, total = (MetricCollector(mp, 1) for mp in plan.metrics)
    slots = [0] * 66
    slots[3], slots[10] = 2, 1
    key = struct.pack("<I", 1)
    value = struct.pack("<66QQQ", *slots, 3 + 4 + 512, 8192)
    fams = [c.family(memoryview(key), memoryview(value), 1) for c in (hist, total)]
    text = render(fams).decode()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in text_string_to_metric_families(text) for s in f.samples}
    assert got[("disksnoop_latency_seconds_bucket", (("le", "+Inf"), ("op", "write")))] == 3
    # slot 3 holds (2, 4] units of 2^-20 s: le = 4 * 2^-20 s
    assert got[("disksnoop_latency_seconds_bucket", (("le", "3.814697265625e-06"), ("op", "write")))] == 2
    assert got[("disksnoop_latency_seconds_count", (("op", "write"),))] == 3
    assert got[("disksnoop_bytes_total", (("op", "write"),))] == 8192


def test_tcpv4connect_key_decodes_address_and_port():
    plan = bind("tcpv4connect", {"connects": ("hash", CONN_KEY, "unsigned long long", 4096),
                                 "currsock": ("hash", "unsigned int", "unsigned long long", 10240)})
    (mp,) = plan.metrics
    assert mp.key_size == 8            # u32 + u16 + 2 bytes of padding, as the kernel lays it out
    key = socket.inet_aton("10.1.2.3") + struct.pack("<H", 443) + b"\0\0"
    fam = MetricCollector(mp, 1).family(memoryview(key), memoryview(struct.pack("<Q", 7)), 1)
    assert fam.all_samples() == [("", labels(daddr="10.1.2.3", dport="443"), 7)]
    assert fam.all_samples()[0][1].text == '{daddr="10.1.2.3",dport="443"}'


def test_a_metric_on_a_missing_table_names_the_field():
    with pytest.raises(AssertionError, match=r"metrics\[0\]\.map"):
        bind("tcpv4connect", {"currsock": ("hash", "unsigned int", "unsigned long long", 10240)})


def test_bcc_manifest_mistakes():
    head = 'name = "p"\nversion = "1.0.0"\ndescription = "d"\nlicense = "GPL-2.0"\n'
    cases = [
        ('[bcc]\nattach = []\n', "bcc.attach", "at least one"),
        ('[bcc]\nattach = [{ fn = "f" }]\n', "bcc.attach[0]", "exactly one of"),
        ('[bcc]\nattach = [{ kprobe = "x", kretprobe = "y", fn = "f" }]\n', "bcc.attach[0]", "exactly one of"),
        ('[bcc]\nattach = [{ tracepoint = "block_rq_issue", fn = "f" }]\n', "bcc.attach[0].tracepoint", "category:name"),
        ('[bcc]\nattach = [{ kprobe = "x", fn = "1f" }]\n', "bcc.attach[0].fn", "not a C function"),
        ('[bcc]\nattach = [{ kprobe = "x", fn = "f" }]\n[knobs.k]\ndefault = 1\n', "knobs", "no knobs"),
        ('[bcc]\nattach = [{ kprobe = "x", fn = "f" }]\n[[metrics]]\nname = "a_total"\ntype = "counter"\n'
         'help = "h"\nglobal = "g"\n', "metrics[0].global", "maps (tables) only"),
    ]
    for body, field, words in cases:
        m, problems = manifest.parse(head + body, "m.toml")
        assert m is None and any(p.field == field and words in p.message for p in problems), (body, problems)
