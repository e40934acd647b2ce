"""Network decoders: inet (IPv4/IPv6 address) and port."""
from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping

from .base import FieldKind, FunctionDecoder, describe, expect_integer, unsigned


def check_inet(field: FieldKind, options: Mapping) -> str | None:
    if field.kind == "int" and field.size == 4:
        return None
    if field.kind == "array" and field.size in (4, 16):
        return None
    return f"expects an integer of 4 bytes or an array of 4 or 16 bytes, field is {describe(field)}"


def decode_inet(value: int | bytes, field: FieldKind, options: Mapping) -> str:
    if isinstance(value, int):
        # The kernel keeps addresses in network order; reading that u32 in host
        # order scrambled the bytes, and writing it back in host order restores them.
        value = unsigned(value, 4).to_bytes(4, sys.byteorder)
    return str(ipaddress.ip_address(bytes(value)))


def decode_port(value: int, field: FieldKind, options: Mapping) -> str:
    network_order = unsigned(value, 2).to_bytes(2, sys.byteorder)
    return str(int.from_bytes(network_order, "big"))


INET = FunctionDecoder("inet", check_inet, decode_inet)
PORT = FunctionDecoder("port", expect_integer(2), decode_port)
