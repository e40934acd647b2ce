"""Ring-buffer events: the manifest's `type`, binding it to BTF (problems name file and field),
decoding records (exporter/events.py), the token bucket and the bounded sink."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.manifest import parse as parse_manifest
from core.binding import EventField, EventPlan, bind
from exporter.events import EventDecoder, EventSink, TokenBucket
from exporter.libbpf import MapInfo


def _load_synth_btf():
    path = Path(__file__).resolve().parent.parent / "core" / "synth_btf.py"
    spec = importlib.util.spec_from_file_location("otlp_events_synth_btf", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


synth = _load_synth_btf()
EXEC_H = Path(__file__).resolve().parents[2] / "programs" / "exec"


def ringbuf():
    return MapInfo("events", "ringbuf", 0, 0, 262144, 0, 0)


@pytest.fixture
def btf():
    """struct exec_event as in programs/exec/exec.h, plus an enum and a nested struct."""
    b = synth.Btf()
    state = b.enum("state", {"RUNNING": 0, "SLEEPING": 1})
    inner = b.struct("where", [("cpu", b.u16), ("node", b.u16)])
    b.exec_event = b.struct("exec_event", [
        ("pid", b.u32), ("ppid", b.u32), ("uid", b.u32),
        ("comm", b.array(b.char, 16)), ("filename", b.array(b.char, 128))])
    b.rich = b.struct("rich_event", [
        ("ts", b.u64), ("delta", b.s64), ("st", state), ("at", inner), ("raw", b.array(b.u8, 4)),
        ("flags", b.u32, 224, 3)])
    b.datasec(".bss", [("dropped", b.u64)])
    return b


def plan_of(b, events_toml: str):
    m = synth.manifest(events_toml)
    plan, problems = bind(m, synth.maps_dict(ringbuf()), b.records, [])
    return plan, problems


# ---------------------------------------------------------------- manifest and schema

def test_manifest_type_field():
    m, problems = parse_manifest(synth.HEADER + '[[events]]\nmap = "events"\ntype = "exec_event"\n', "m.toml")
    assert problems == [] and m.events[0].type == "exec_event"
    m, problems = parse_manifest(synth.HEADER + '[[events]]\nmap = "events"\n', "m.toml")
    assert m.events[0].type is None


@pytest.mark.parametrize("value, words", [('"struct exec_event"', "give the name alone"),
                                          ("3", "expected a string")])
def test_manifest_type_must_be_a_struct_name(value, words):
    _m, problems = parse_manifest(synth.HEADER + f'[[events]]\nmap = "events"\ntype = {value}\n', "m.toml")
    assert [(p.file, p.field) for p in problems] == [("m.toml", "events[0].type")]
    assert words in problems[0].message


def test_bind_exec_event_layout(btf):
    plan, problems = plan_of(btf, '[[events]]\nmap = "events"\ndrops = "dropped"\ntype = "exec_event"\n')
    assert problems == []
    (ev,) = plan.events
    assert (ev.map, ev.type, ev.size, ev.drops_section) == ("events", "exec_event", 156, ".bss")
    assert ev.fields == (EventField("pid", 0, 4, "int"), EventField("ppid", 4, 4, "int"),
                         EventField("uid", 8, 4, "int"), EventField("comm", 12, 16, "string"),
                         EventField("filename", 28, 128, "string"))


def test_bind_flattens_and_skips_what_cannot_be_decoded(btf):
    plan, problems = plan_of(btf, '[[events]]\nmap = "events"\ntype = "rich_event"\n')
    assert problems == []
    (ev,) = plan.events
    kinds = {f.name: (f.kind, f.offset, f.signed) for f in ev.fields}
    assert kinds == {"ts": ("int", 0, False), "delta": ("int", 8, True), "st": ("enum", 16, False),
                     "at_cpu": ("int", 20, False), "at_node": ("int", 22, False), "raw": ("bytes", 24, False)}
    assert ev.skipped == ("flags",)


def test_missing_struct_names_file_and_field(btf):
    _plan, problems = plan_of(btf, '[[events]]\nmap = "events"\ntype = "exec_evnt"\n')
    assert [(p.file, p.field) for p in problems] == [("programs/demo/manifest.toml", "events[0].type")]
    msg = problems[0].message
    assert "no struct 'exec_evnt'" in msg and "exec_event" in msg and "global" in msg


def test_events_without_type_bind_as_before(btf):
    plan, problems = plan_of(btf, '[[events]]\nmap = "events"\n')
    assert problems == [] and plan.events == (EventPlan("events", None, ""),)


def test_exec_manifest_names_its_event_struct():
    text = (EXEC_H / "manifest.toml").read_text()
    m, problems = parse_manifest(text, "programs/exec/manifest.toml")
    assert problems == [] and m.events[0].type == "exec_event" and m.name == "exec"
    assert "struct exec_event {" in (EXEC_H / "exec.h").read_text()
    assert "const struct exec_event *const exec_event_btf" in (EXEC_H / "exec.bpf.c").read_text()


# ---------------------------------------------------------------- decoding

def exec_record(pid=4242, ppid=1, uid=1000, comm=b"true", filename=b"/bin/true") -> bytes:
    return struct.pack("<III16s128s", pid, ppid, uid, comm, filename)


def test_decode_exec_event(btf):
    plan, _ = plan_of(btf, '[[events]]\nmap = "events"\ntype = "exec_event"\n')
    d = EventDecoder(plan.events[0], "exec", "1.1.0").decode(exec_record())
    assert d.attributes == {"bpfleet.program.name": "exec", "bpfleet.program.version": "1.1.0",
                            "pid": 4242, "ppid": 1, "uid": 1000, "comm": "true", "filename": "/bin/true"}
    assert d.body == "exec true pid=4242"
    assert d.event_name == "exec.exec_event"


def test_decode_strings_stop_at_nul_and_survive_bad_utf8(btf):
    plan, _ = plan_of(btf, '[[events]]\nmap = "events"\ntype = "exec_event"\n')
    d = EventDecoder(plan.events[0], "exec", "1.1.0").decode(exec_record(comm=b"a\xffb\0junk"))
    assert d.attributes["comm"] == "a\ufffdb"


def test_decode_signed_enum_nested_bytes_and_u64_overflow(btf):
    plan, _ = plan_of(btf, '[[events]]\nmap = "events"\ntype = "rich_event"\n')
    rec = struct.pack("<QqIHH4sI", 2**64 - 1, -5, 1, 3, 7, b"\x01\x02\x03\x04", 0)
    d = EventDecoder(plan.events[0], "rich", "1.0.0").decode(rec)
    a = d.attributes
    assert (a["ts"], a["delta"], a["st"], a["at_cpu"], a["at_node"], a["raw"]) == \
        (str(2**64 - 1), -5, "SLEEPING", 3, 7, "01020304")       # OTLP ints are int64
    assert d.body == "rich"


def test_decode_short_record_keeps_what_fits(btf):
    plan, _ = plan_of(btf, '[[events]]\nmap = "events"\ntype = "exec_event"\n')
    d = EventDecoder(plan.events[0], "exec", "1.1.0").decode(exec_record()[:20])
    assert d.attributes["pid"] == 4242 and "comm" not in d.attributes
    assert d.attributes["bpfleet.event.truncated"] is True


def test_untyped_events_carry_their_bytes(btf):
    plan, _ = plan_of(btf, '[[events]]\nmap = "events"\n')
    d = EventDecoder(plan.events[0], "exec", "1.0.0").decode(b"\x01\x02")
    assert d.body == b"\x01\x02" and d.attributes["bpfleet.event.size"] == 2
    assert d.event_name == "exec.events"


@pytest.mark.parametrize("type_", ["exec_event", "rich_event"])
def test_decode_any_record_bytes(btf, type_):
    """Records of any length and content (what a buggy or hostile program may submit): decode
    never raises, text is valid UTF-8, ints fit OTLP's int64 (or are strings), and only the
    fields that fit are there."""
    plan, _ = plan_of(btf, f'[[events]]\nmap = "events"\ntype = "{type_}"\n')
    ev = plan.events[0]
    dec = EventDecoder(ev, "p", "1.0.0")

    @settings(max_examples=300, deadline=None, database=None)
    @given(data=st.binary(max_size=2 * ev.size))
    def check(data):
        d = dec.decode(data)
        for f in ev.fields:
            assert (f.name in d.attributes) == (f.offset + f.size <= len(data)), f.name
        for v in d.attributes.values():
            assert isinstance(v, (bool, str)) or isinstance(v, int) and -2**63 <= v < 2**63
            if isinstance(v, str):
                v.encode("utf-8")
        assert d.attributes.get("bpfleet.event.truncated", False) == (len(data) < ev.size)
        assert isinstance(d.body, str)
    check()


# ---------------------------------------------------------------- rate limit and queue

class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_token_bucket_rate_and_burst():
    clock = Clock()
    tb = TokenBucket(10, clock=clock)
    assert sum(tb.take() for _ in range(50)) == 10          # the burst
    clock.t += 0.5
    assert sum(tb.take() for _ in range(50)) == 5           # 10/s for half a second
    clock.t += 100
    assert sum(tb.take() for _ in range(50)) == 10          # never more than the burst


class Prog:
    name = "exec"

    class artifact:
        version = "1.1.0"


def test_sink_counts_rate_limit_and_queue_full_drops():
    clock = Clock()
    plan = EventPlan("events", None, "")
    sink = EventSink(events_per_second=5, capacity=3, clock=clock)
    for _ in range(10):
        sink(Prog, plan, b"x")
    assert (len(sink), sink.dropped) == (3, {"rate_limit": 5, "queue_full": 2})
    assert sink.received == 10
    got = sink.pop(2)
    assert [(e.program, e.version, e.data) for e in got] == [("exec", "1.1.0", b"x")] * 2
    assert len(sink) == 1 and sink.pop(100)[0].time_unix_ns > 0 and len(sink) == 0
