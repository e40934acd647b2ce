"""core.fields: declared fields read into typed values; every problem has the file and field."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.fields import MISSING, Field, Reader, Section, list_of, one_of, positive, table_of
from core.problems import ProblemsError


@dataclass(frozen=True)
class Limits:
    enabled: bool = True
    seconds: float = 5.0
    windows: int = 3
    policy: str = "manual"


LIMITS = Section((
    Field("enabled", bool),
    Field("seconds", (int, float), expect="a positive number of seconds", check=positive, convert=float),
    Field("windows", int, expect="an integer >= 1", check=lambda v: v >= 1),
    Field("policy", check=one_of(("manual", "after"))),
), expect="a table: [limits]", make=Limits)


def read(section, value, where="limits"):
    r = Reader("f.toml")
    out = section.read(r, value, where)
    return out, [(p.file, p.field, p.message) for p in r.problems]


def test_values_are_typed_and_left_out_fields_keep_their_defaults():
    assert read(LIMITS, {}) == (Limits(), [])
    out, problems = read(LIMITS, {"seconds": 2, "windows": 1, "policy": "after", "enabled": False})
    assert problems == [] and out == Limits(False, 2.0, 1, "after")
    assert isinstance(out.seconds, float)


@pytest.mark.parametrize("table, field, message", [
    ({"enabled": "yes"}, "limits.enabled", "expected true or false, got 'yes'"),
    ({"enabled": 1}, "limits.enabled", "expected true or false, got 1"),
    ({"seconds": "5s"}, "limits.seconds", "expected a positive number of seconds, got '5s'"),
    ({"seconds": True}, "limits.seconds", "expected a positive number of seconds, got True"),
    ({"seconds": 0}, "limits.seconds", "expected a positive number of seconds, got 0"),
    ({"seconds": float("inf")}, "limits.seconds", "expected a positive number of seconds, got inf"),
    ({"windows": 2.5}, "limits.windows", "expected an integer >= 1, got 2.5"),
    ({"windows": False}, "limits.windows", "expected an integer >= 1, got False"),
    ({"policy": "never"}, "limits.policy", "'never' is not one of: 'manual', 'after'"),
    ({"policy": ["manual"]}, "limits.policy", "['manual'] is not one of: 'manual', 'after'"),
    ({"window": 3}, "limits.window", "unknown field (expected one of: enabled, policy, seconds, windows)"),
])
def test_one_problem_names_file_and_field(table, field, message):
    assert read(LIMITS, table) == (None, [("f.toml", field, message)])


def test_not_a_table():
    assert read(LIMITS, "on") == (None, [("f.toml", "limits", "expected a table: [limits]")])


def test_every_problem_at_once_in_field_order_after_unknown_keys():
    out, problems = read(LIMITS, {"policy": 1, "extra": 0, "enabled": "no", "seconds": -1})
    assert out is None
    assert [f for _, f, _ in problems] == ["limits.extra", "limits.enabled", "limits.seconds", "limits.policy"]


def test_required_and_top_level_paths():
    s = Section((Field("name", str, required=True), Field("n", int, default=7)))
    assert read(s, {}, "") == (None, [("f.toml", "name", "required field is missing")])
    assert read(s, {"name": "x"}, "") == ({"name": "x", "n": 7}, [])


def test_nested_tables_and_arrays_name_the_key_and_index():
    s = Section((
        Field("knobs", dict, read=table_of(Field("", (int, bool), expect="an integer or boolean"))),
        Field("keys", list, read=list_of(Field("", str, check=lambda k: k.endswith(".pub") or f"{k}: not a key"))),
        Field("sub", read=LIMITS.read),
    ))
    out, problems = read(s, {"knobs": {"a": 1, "b": 0.5, "c": True}, "keys": ["a.pub", 3, "b"],
                             "sub": {"windows": 0}}, "x")
    assert out is None
    assert problems == [("f.toml", "x.knobs.b", "expected an integer or boolean, got 0.5"),
                        ("f.toml", "x.keys[1]", "expected a string, got 3"),
                        ("f.toml", "x.keys[2]", "b: not a key"),
                        ("f.toml", "x.sub.windows", "expected an integer >= 1, got 0")]
    assert read(s, {"knobs": {"a": 1}, "keys": ["a.pub"], "sub": {}}, "x") == (
        {"knobs": {"a": 1}, "keys": ["a.pub"], "sub": Limits()}, [])


@pytest.mark.parametrize("value", [True, False, 0, "x", None, [1], {"a": 1}])
def test_a_field_of_any_type_takes_any_value_to_its_check(value):
    f = Field("v", check=lambda v: v is False or f"got {v!r}")
    assert f.problem(value) == (None if value is False else f"got {value!r}")


def test_field_problem_checks_a_value_on_its_own():
    # what the OTLP settings use for OTEL_* variables: the same field, no table
    f = LIMITS.field("policy")
    assert f.problem("after") is None and f.problem("x") == "'x' is not one of: 'manual', 'after'"
    assert Field("n", int).take(Reader("f"), {}, "") is MISSING


def test_reader_get_is_the_manifests_typed_access():
    r = Reader("m.toml")
    assert r.get({"a": "x"}, "a", "t", str) == "x"
    assert r.get({}, "a", "t", str, default="d") == "d"
    assert r.get({"a": True}, "a", "t", int, default=0) == 0
    assert r.get({}, "b", "", int, required=True) is None
    assert [str(p) for p in r.problems] == ["m.toml: t.a: expected an integer, got bool True",
                                            "m.toml: b: required field is missing"]
    with pytest.raises(ProblemsError) as e:
        r.raise_if_any()
    assert len(e.value.problems) == 2
