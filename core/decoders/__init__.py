"""Label decoders: turn a raw BPF map key field into a Prometheus label value.

DECODERS is the one registry; a manifest label names its decoder there, and
default_decoder_name() picks one when the manifest does not."""
from __future__ import annotations

from .base import Decoder, FieldKind, FrozenMapping, FunctionDecoder, describe
from .cgroup import CGROUP
from .devices import DEVT, DISK
from .generic import ENUM, HEX, STATIC, STRING, UINT
from .kernel import ERRNO, KSYM, SYSCALL
from .network import INET, PORT

DECODERS: dict[str, Decoder] = {
    decoder.name: decoder
    for decoder in (
        UINT, HEX, STRING, ENUM, STATIC,
        SYSCALL, ERRNO, KSYM,
        INET, PORT,
        DEVT, DISK,
        CGROUP,
    )
}


def default_decoder_name(field: FieldKind) -> str:
    if field.kind == "int":
        return "uint"
    if field.kind == "enum":
        return "enum"
    if field.kind == "array":
        return "string" if field.is_char else "hex"
    raise ValueError(f"no default decoder for a field of kind {field.kind!r}")


__all__ = [
    "DECODERS", "Decoder", "FieldKind", "FrozenMapping", "FunctionDecoder",
    "default_decoder_name", "describe",
]
