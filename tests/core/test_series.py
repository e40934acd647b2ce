"""core/series.py: a label set renders itself to Prometheus text, protobuf label pairs and OTel
attributes, and the three agree; the label cache interns and stays bounded."""
from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from core import series
from core.limits import OVERFLOW, overflow_labels
from core.series import EMPTY, LabelCache, LabelSet, escape_label_value, labels


def _metric_class():
    """client_model's Metric with only its labels: Metric{repeated LabelPair label = 1}."""
    opt, rep = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL, descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    string, message = descriptor_pb2.FieldDescriptorProto.TYPE_STRING, descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    fd = descriptor_pb2.FileDescriptorProto(name="bpfleet_test/labels.proto", package="t", syntax="proto2")
    pair = fd.message_type.add(name="LabelPair")
    pair.field.add(name="name", number=1, label=opt, type=string)
    pair.field.add(name="value", number=2, label=opt, type=string)
    fd.message_type.add(name="Metric").field.add(name="label", number=1, label=rep, type=message,
                                                  type_name=".t.LabelPair")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("t.Metric"))


Metric = _metric_class()


def from_text(ls: LabelSet) -> list[tuple[str, str]]:
    (fam,) = text_string_to_metric_families(f"m{ls.text} 1\n")
    (sample,) = fam.samples
    return list(sample.labels.items())


def from_proto(ls: LabelSet) -> list[tuple[str, str]]:
    m = Metric()
    m.ParseFromString(ls.proto)
    assert m.SerializeToString() == ls.proto       # exactly the canonical encoding
    return [(p.name, p.value) for p in m.label]


def agree(ls: LabelSet, pairs) -> None:
    pairs = list(pairs)
    assert list(ls.pairs()) == pairs
    assert from_text(ls) == pairs
    assert from_proto(ls) == pairs
    assert ls.attributes == dict(pairs) and list(ls.attributes) == [n for n, _v in pairs]


@pytest.mark.parametrize("pairs", [
    [], [("a", "x")], [("a", ""), ("b", "y")], [("comm", 'a"b\\'), ("path", "x\ny")],
    [("v", "\\n")], [("v", 'end\\')], [("v", "}{,=\"")], [("city", "東京"), ("t", "tab\t\r")],
    [("empty", ""), ("also_empty", "")],
])
def test_text_protobuf_and_attributes_agree(pairs):
    agree(LabelSet.of(pairs), pairs)


LABEL_NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True).filter(lambda n: not n.startswith("__"))  # __: reserved


@settings(max_examples=300)
@given(st.lists(st.tuples(LABEL_NAMES, st.text()), max_size=5, unique_by=lambda p: p[0]))
def test_text_protobuf_and_attributes_agree_for_anything(pairs):
    agree(LabelSet.of(pairs), pairs)


def test_the_overflow_label_set_agrees_too():
    ls = overflow_labels(["comm", "pid"])
    assert ls.text == f'{{comm="{OVERFLOW}",pid="{OVERFLOW}"}}'
    agree(ls, [("comm", OVERFLOW), ("pid", OVERFLOW)])
    assert overflow_labels([]) == EMPTY and overflow_labels([]).text == ""


def test_the_empty_label_set():
    assert (EMPTY.text, EMPTY.proto, EMPTY.attributes, EMPTY.names) == ("", b"", {}, ())


def test_renderings_are_made_once_and_kept():
    ls = labels(a="x")
    assert ls.text is ls.text and ls.proto is ls.proto and ls.attributes is ls.attributes


def test_a_decoder_supplied_text_is_kept():
    assert LabelSet(("a",), ("x",), '{a="x"}').text == '{a="x"}'


@pytest.mark.parametrize("value, escaped", [
    ("plain", "plain"),
    ('a"b\\', 'a\\"b\\\\'),
    ("line1\nline2", "line1\\nline2"),
    ("\\n", "\\\\n"),  # a literal backslash-n is not a newline
    ("tab\tand\rcr", "tab\tand\rcr"),
    ("", ""),
])
def test_escape_label_value(value, escaped):
    assert escape_label_value(value) == escaped


@pytest.mark.parametrize("pairs, rendered", [
    ([], ""),
    ([("a", "x")], '{a="x"}'),
    ([("a", "x"), ("b", "y")], '{a="x",b="y"}'),
    ([("comm", 'a"b\\'), ("path", "x\ny")], '{comm="a\\"b\\\\",path="x\\ny"}'),
])
def test_text(pairs, rendered):
    assert LabelSet.of(pairs).text == rendered
    assert LabelSet.of(iter(pairs)).text == rendered


def test_values_are_data():
    ls = labels(program="exec", action="blocked")
    assert ls.get("action") == "blocked" and ls.get("nope") is None
    assert ls.with_label("le", "1.0").pairs() == (("program", "exec"), ("action", "blocked"), ("le", "1.0"))
    assert ls.with_label("le", "1.0").without("le") == ls
    assert labels(pid=7).values == ("7",)


def test_equal_by_value_and_ordered_like_the_text():
    a, b = labels(a="x", b="y"), LabelSet.of([("a", "x"), ("b", "y")])
    assert a == b and hash(a) == hash(b) and a is not b and len({a, b}) == 1
    assert labels(a="x") != labels(b="x") and labels(a="x") != '{a="x"}'
    assert sorted([labels(a="y"), labels(a="x")]) == [labels(a="x"), labels(a="y")]


# ---- LabelCache -------------------------------------------------------------------------------

def make(keys):
    """Key bytes -> one label `k` whose value is the key's first byte (so keys can alias)."""
    values = [(str(k[0]),) for k in keys]
    return values, [f'{{k="{v}"}}' for (v,) in values]


def test_cache_interns_equal_label_sets_of_different_keys():
    c = LabelCache(("k",))
    a, b, other = c.lookup([b"\x01a", b"\x01b", b"\x02a"], make)
    assert a is b and a != other and c.aliased
    assert a.text == '{k="1"}' and a.pairs() == (("k", "1"),)
    assert c.lookup([b"\x01a"], make)[0] is a            # cached by key


def test_cache_without_aliases_says_so():
    c = LabelCache(("k",))
    c.lookup([b"\x01", b"\x02"], make)
    assert not c.aliased


def test_cache_is_bounded_and_keeps_interning_across_a_restart(monkeypatch):
    monkeypatch.setattr(series, "LABEL_CACHE_LIMIT", 4)
    c = LabelCache(("k",))
    first = c.lookup([b"\x01a", b"\x02a", b"\x03a"], make)
    # two keys never seen: past the limit only this lookup's keys stay ...
    again = c.lookup([b"\x01a", b"\x01b", b"\x09a"], make)
    assert len(c) == 3
    # ... and a new key decoding like a kept one is that very label set
    assert again[0] is first[0] and again[1] is again[0] and c.aliased
