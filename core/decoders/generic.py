"""Decoders that need nothing but the value: uint, hex, string, enum, static."""
from __future__ import annotations

import re
from collections.abc import Mapping

from .base import FieldKind, FunctionDecoder, describe, expect_integer, unsigned


def decode_uint(value: int, field: FieldKind, options: Mapping) -> str:
    return str(value)


def check_hex(field: FieldKind, options: Mapping) -> str | None:
    if field.kind in ("int", "enum", "array"):
        return None
    return f"expects an integer or an array, field is {describe(field)}"


def decode_hex(value: int | bytes, field: FieldKind, options: Mapping) -> str:
    if isinstance(value, int):
        # Negative numbers print as the stored bit pattern, as the kernel sees them.
        return hex(unsigned(value, field.size))
    return "0x" + bytes(value).hex()


def check_string(field: FieldKind, options: Mapping) -> str | None:
    if field.kind == "array" and field.is_char:
        return None
    return f"expects a char array, field is {describe(field)}"


def decode_string(value: bytes, field: FieldKind, options: Mapping) -> str:
    # Replacement, not an error: label values must be valid UTF-8 and kernel
    # strings (comm, filenames) are arbitrary bytes.
    return bytes(value).split(b"\0", 1)[0].decode("utf-8", "replace")


def check_enum(field: FieldKind, options: Mapping) -> str | None:
    if field.kind == "enum":
        return None
    return f"expects an enum, field is {describe(field)}"


def decode_enum(value: int, field: FieldKind, options: Mapping) -> str:
    return field.enum_values.get(value, str(value))


# Canonical decimal only, so decode() can look keys up as str(value) without
# normalising the table on every call ("01" or "+1" would never match).
_DECIMAL_KEY = re.compile(r"0|-?[1-9][0-9]*")


def check_static(field: FieldKind, options: Mapping) -> str | None:
    not_integer = expect_integer(allow_enum=True)(field, options)
    if not_integer:
        return not_integer
    values = options.get("values")
    if not isinstance(values, Mapping) or not values:
        return 'expects a non-empty "values" table, e.g. values = { "0" = "read" }'
    low, high = _value_range(field)
    for key, name in values.items():
        if not isinstance(key, str) or not _DECIMAL_KEY.fullmatch(key):
            return f'"values" key {key!r} is not a decimal integer like "0" or "-1"'
        if not low <= int(key) <= high:
            return f'"values" key {key} does not fit in {describe(field)}'
        if not isinstance(name, str):
            return f'"values" entry {key} must be a string, got {name!r}'
    return None


def _value_range(field: FieldKind) -> tuple[int, int]:
    bits = 8 * field.size
    if field.signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def decode_static(value: int, field: FieldKind, options: Mapping) -> str:
    return options["values"].get(str(value), str(value))


UINT = FunctionDecoder("uint", expect_integer(allow_enum=True), decode_uint)
HEX = FunctionDecoder("hex", check_hex, decode_hex)
STRING = FunctionDecoder("string", check_string, decode_string)
ENUM = FunctionDecoder("enum", check_enum, decode_enum)
STATIC = FunctionDecoder("static", check_static, decode_static)
