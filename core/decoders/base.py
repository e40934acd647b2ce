"""Field description, decoder protocol and the shared check() helpers."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


class FrozenMapping(Mapping):
    """Read-only, hashable mapping, so FieldKind stays a hashable frozen dataclass
    (FieldKind is a natural cache key)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping | Iterable = ()):
        self._items = dict(items)

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)

    def __hash__(self):
        return hash(frozenset(self._items.items()))

    def __repr__(self):
        return f"FrozenMapping({self._items!r})"


@dataclass(frozen=True)
class FieldKind:
    """What the BTF says about a key field, as far as label decoding cares.

    enum_values accepts any mapping (or iterable of pairs); it is stored as a
    FrozenMapping so that FieldKind is hashable."""

    kind: str  # "int" | "enum" | "array"
    size: int  # bytes
    signed: bool = False
    is_char: bool = False
    enum_values: Mapping[int, str] = field(default_factory=FrozenMapping)

    def __post_init__(self):
        if not isinstance(self.enum_values, FrozenMapping):
            object.__setattr__(self, "enum_values", FrozenMapping(self.enum_values))


class Decoder(Protocol):
    name: str

    def check(self, field: FieldKind, options: Mapping) -> str | None: ...

    def decode(self, value: Any, field: FieldKind, options: Mapping) -> str: ...


CheckFn = Callable[[FieldKind, Mapping], "str | None"]
DecodeFn = Callable[[Any, FieldKind, Mapping], str]


@dataclass(frozen=True)
class FunctionDecoder:
    """A Decoder made of two plain functions, so decoders stay pure functions."""

    name: str
    check: CheckFn
    decode: DecodeFn


def describe(field: FieldKind) -> str:
    """Human wording of a field for check() reasons, C-like: u16, s32, char[16]."""
    if field.kind == "int":
        return f"{'s' if field.signed else 'u'}{field.size * 8}"
    if field.kind == "enum":
        return f"enum of {field.size} bytes"
    if field.kind == "array":
        return f"char[{field.size}]" if field.is_char else f"array of {field.size} bytes"
    return f"{field.kind} of {field.size} bytes"


def _sizes_text(sizes: tuple[int, ...]) -> str:
    if not sizes:
        return ""
    *rest, last = (str(size) for size in sizes)
    listed = f"{', '.join(rest)} or {last}" if rest else last
    return f" of {listed} bytes"


def expect_integer(*sizes: int, allow_enum: bool = False) -> CheckFn:
    """check() accepting integers (of the given sizes, if any)."""
    kinds = ("int", "enum") if allow_enum else ("int",)
    wanted = f"an integer{_sizes_text(sizes)}"

    def check(field: FieldKind, options: Mapping) -> str | None:
        if field.kind in kinds and (not sizes or field.size in sizes):
            return None
        return f"expects {wanted}, field is {describe(field)}"

    return check


def unsigned(value: int, size: int) -> int:
    """The bit pattern of a possibly signed value, as the kernel stored it."""
    return value & ((1 << (8 * size)) - 1)
