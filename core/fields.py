"""One reader for the tables people write: manifests, the exporter config's sections, admin API
request bodies, OTLP settings. Pure.

A section declares its fields once (name, types, default, required, check, help); reading a
dict gives typed values, and every problem - a wrong type, a failed check, a missing required
field, an unknown key - is recorded with its file and field path (core/problems.py). Reading
goes on after a problem, so that all of them are reported at once.

    BREAKER = Section((
        Field("enabled", bool, help="false: budgets are not enforced"),
        Field("windows", int, expect="an integer >= 1", check=lambda v: v >= 1),
        Field("reenable", str, check=one_of(("manual", "after"))),
    ), expect="a table: [breaker]", make=BreakerConfig)
    r = Reader("/etc/bpfleet/config.toml")
    breaker = BREAKER.read(r, doc["breaker"], "breaker")   # None when it had problems
    r.raise_if_any()                                       # ProblemsError with all of them
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core.problems import Problem, ProblemsError


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()   # a field left out: no value (the made object's own default applies)

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               dict: "a table", list: "an array"}


def _tuple(t) -> tuple:
    return t if isinstance(t, tuple) else (t,)


def type_names(types, boolean: str = "true or false") -> str:
    return " or ".join(boolean if t is bool else _TYPE_NAMES.get(t, t.__name__) for t in _tuple(types))


def is_a(value, types) -> bool:
    """isinstance, except that a bool is not an int (or a number) unless bool is listed."""
    if isinstance(value, bool):
        return bool in _tuple(types) or object in _tuple(types)
    return isinstance(value, types)


def join(where: str, key) -> str:
    return f"{where}.{key}" if where else str(key)


class Reader:
    """Records problems against one file (or request) instead of raising."""

    def __init__(self, file: str, problems: list[Problem] | None = None):
        self.path = file
        self.problems = [] if problems is None else problems

    def bad(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.path, where, message))

    def mark(self) -> int:
        return len(self.problems)

    def since(self, mark: int) -> bool:
        """Whether problems were found after `mark`."""
        return len(self.problems) > mark

    def raise_if_any(self) -> None:
        if self.problems:
            raise ProblemsError(self.problems)

    def unknown(self, table: dict, allowed, where: str) -> None:
        for key in table:
            if key not in allowed:
                self.bad(join(where, key), f"unknown field (expected one of: {', '.join(sorted(allowed))})")

    def get(self, table: dict, key: str, where: str, types, required=False, default=None):
        """One typed value (the manifest's style: the problem names the value's type)."""
        if key not in table:
            if required:
                self.bad(join(where, key), "required field is missing")
            return default
        value = table[key]
        if not is_a(value, types):
            self.bad(join(where, key), f"expected {type_names(types, 'a boolean')}, "
                     f"got {type(value).__name__} {value!r}")
            return default
        return value


@dataclass(frozen=True)
class Field:
    name: str
    types: type | tuple = object     # accepted Python types (a bool is not an int unless listed)
    default: object = MISSING        # the value when left out; MISSING: no value
    required: bool = False
    expect: str = ""                 # "a positive number of seconds": "expected <expect>, got <value>"
    check: Callable | None = None    # value -> True/None: fine; False: "expected …"; a str: that problem
    read: Callable | None = None     # (reader, value, where) -> value, for a value with fields of its own
    convert: Callable | None = None  # applied to a good value (float for numbers)
    help: str = ""

    def problem(self, value) -> str | None:
        """What is wrong with `value` (its type or its check), or None."""
        expected = f"expected {self.expect or type_names(self.types)}, got {value!r}"
        if not is_a(value, self.types):
            return expected
        verdict = self.check(value) if self.check is not None else None
        if verdict is False:
            return expected
        return verdict if isinstance(verdict, str) else None

    def take(self, r: Reader, table: dict, where: str):
        """This field's value from `table` (problems go to `r`), MISSING when left out or bad."""
        w = join(where, self.name)
        if self.name not in table:
            if self.required:
                r.bad(w, "required field is missing")
            return self.default
        value = table[self.name]
        message = self.problem(value)
        if message is not None:
            r.bad(w, message)
            return MISSING
        if self.read is not None:
            value = self.read(r, value, w)
        return self.convert(value) if self.convert is not None and value is not MISSING else value


@dataclass(frozen=True)
class Section:
    fields: tuple[Field, ...]
    expect: str = "a table"          # the problem when the value is not a table: "expected <expect>"
    make: Callable | None = None     # values -> object (a dataclass); None: the dict of values

    def names(self) -> set[str]:
        return {f.name for f in self.fields}

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    def read(self, r: Reader, value, where: str):
        """The section's values (made into an object with `make`), or None when `value` had
        problems; those are in `r`. Unknown keys are problems too."""
        if not isinstance(value, dict):
            r.bad(where, f"expected {self.expect}")
            return None
        mark = r.mark()
        r.unknown(value, self.names(), where)
        out = {}
        for f in self.fields:
            v = f.take(r, value, where)
            if v is not MISSING:
                out[f.name] = v
        if r.since(mark):
            return None
        return self.make(**out) if self.make is not None else out


# ---- checks and readers for Field(check=..., read=...) ----

def one_of(choices) -> Callable:
    def check(v):
        return v in choices or f"{v!r} is not one of: {', '.join(repr(c) for c in choices)}"
    return check


def positive(v) -> bool:
    return 0 < v < float("inf")


def table_of(item: Field) -> Callable:
    """A read for a table of name = value, each value checked like `item` (its problem names
    the key: knobs.target_pid)."""
    def read(r: Reader, table: dict, where: str) -> dict:
        out = {}
        for key in table:
            v = Field(key, item.types, expect=item.expect, check=item.check, read=item.read,
                      convert=item.convert).take(r, table, where)
            if v is not MISSING:
                out[key] = v
        return out
    return read


def list_of(item: Field) -> Callable:
    """A read for an array, each entry checked like `item` (its problem names the index: [2])."""
    def read(r: Reader, items: list, where: str) -> list:
        f = Field("", item.types, expect=item.expect, check=item.check, read=item.read,
                  convert=item.convert)
        out = []
        for i, v in enumerate(items):
            message = f.problem(v)
            if message is not None:
                r.bad(f"{where}[{i}]", message)
            else:
                out.append(f.read(r, v, f"{where}[{i}]") if f.read else (f.convert(v) if f.convert else v))
        return out
    return read
