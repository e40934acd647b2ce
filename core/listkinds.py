"""The kinds of entries a mitigation list holds, and how each becomes a BPF map key. Pure.

A list is a BPF map whose keys are the entries (docs/mitigations.md#lists). Each kind knows
which map types and key sizes can hold it, how to turn a textual entry into key bytes, and
how to turn key bytes back into text (for /status). Encoders raise ValueError with a message
that the caller prefixes with the file/field or API path.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass
from typing import Callable

DEVICE_TYPES = {"c": 2, "char": 2, "b": 1, "block": 1, "*": 0}   # BPF_DEVCG_DEV_CHAR/BLOCK


@dataclass(frozen=True)
class ListKind:
    name: str
    map_types: tuple[str, ...]
    key_size_ok: Callable[[int], bool]
    key_size_text: str
    encode: Callable[[object, int], bytes]   # (entry, key size) -> key bytes
    decode: Callable[[bytes], str]
    example: str


def _prefix(version: int):
    addr_len = 4 if version == 4 else 16

    def encode(entry, key_size: int) -> bytes:
        if not isinstance(entry, str):
            raise ValueError(f"expected an IPv{version} prefix like {_example(version)}, got {entry!r}")
        try:
            net = ipaddress.ip_network(entry, strict=True)
        except ValueError as e:
            raise ValueError(f"{entry!r} is not an IPv{version} prefix: {e}") from None
        if net.version != version:
            raise ValueError(f"{entry!r} is IPv{net.version}; this list holds IPv{version} prefixes")
        # struct bpf_lpm_trie_key: u32 prefixlen (host order) then the address (network order)
        return struct.pack("<I", net.prefixlen) + net.network_address.packed

    def decode(key: bytes) -> str:
        plen = struct.unpack_from("<I", key)[0]
        return f"{ipaddress.ip_address(key[4:4 + addr_len])}/{plen}"
    return encode, decode


def _example(version: int) -> str:
    return "\"192.0.2.0/24\"" if version == 4 else "\"2001:db8::/32\""


def _text(what: str, max_from_key: bool = True):
    def encode(entry, key_size: int) -> bytes:
        if not isinstance(entry, str) or not entry:
            raise ValueError(f"expected {what} as a non-empty string, got {entry!r}")
        raw = entry.encode()
        if len(raw) >= key_size:
            raise ValueError(f"{entry!r} is {len(raw)} bytes; the list's key holds at most {key_size - 1}")
        return raw.ljust(key_size, b"\0")

    def decode(key: bytes) -> str:
        return key.split(b"\0", 1)[0].decode(errors="replace")
    return encode, decode


def _cgroup_id(entry, key_size: int) -> bytes:
    """A cgroup v2 id is the inode number of its directory: give the id or the path."""
    if isinstance(entry, bool) or not isinstance(entry, (int, str)):
        raise ValueError(f"expected a cgroup id or a cgroup v2 path, got {entry!r}")
    if isinstance(entry, str):
        try:
            entry = os.stat(entry).st_ino
        except OSError as e:
            raise ValueError(f"cgroup {entry!r}: {e.strerror}") from None
    if not 0 < entry < 1 << 64:
        raise ValueError(f"{entry} is not a cgroup id")
    return struct.pack("<Q", entry)


def _device(entry, key_size: int) -> bytes:
    """"c 1:3" (char), "b 8:0" (block); "*" for any major or minor."""
    parts = entry.split() if isinstance(entry, str) else []
    if len(parts) != 2 or parts[0] not in DEVICE_TYPES or parts[1].count(":") != 1:
        raise ValueError(f"expected a device like \"c 1:3\" or \"b 8:*\", got {entry!r}")
    numbers = []
    for n in parts[1].split(":"):
        if n == "*":
            numbers.append(0xFFFFFFFF)
        elif n.isdigit() and int(n) < 0xFFFFFFFF:
            numbers.append(int(n))
        else:
            raise ValueError(f"{entry!r}: {n!r} is not a device number or *")
    return struct.pack("<III", DEVICE_TYPES[parts[0]], *numbers)


def _decode_device(key: bytes) -> str:
    t, major, minor = struct.unpack_from("<III", key)
    kind = {2: "c", 1: "b"}.get(t, "*")
    return f"{kind} {'*' if major == 0xFFFFFFFF else major}:{'*' if minor == 0xFFFFFFFF else minor}"


def _family(entry, key_size: int) -> bytes:
    if isinstance(entry, str):
        value = getattr(socket, entry, None) if entry.startswith("AF_") else None
        if value is None and entry in _EXTRA_FAMILIES:
            value = _EXTRA_FAMILIES[entry]
        if value is None:
            raise ValueError(f"{entry!r} is not an address family name like \"AF_ALG\"")
        entry = int(value)
    if isinstance(entry, bool) or not isinstance(entry, int) or not 0 <= entry < 64:
        raise ValueError(f"expected an address family (\"AF_ALG\" or a number below 64), got {entry!r}")
    return struct.pack("<I", entry)


_EXTRA_FAMILIES = {"AF_ALG": 38, "AF_VSOCK": 40, "AF_XDP": 44}   # not in every Python build


def _decode_family(key: bytes) -> str:
    n = struct.unpack_from("<I", key)[0]
    names = {int(v): k for k, v in vars(socket).items() if k.startswith("AF_") and isinstance(v, int)}
    names.update({v: k for k, v in _EXTRA_FAMILIES.items()})
    return names.get(n, str(n))


_v4, _v4d = _prefix(4)
_v6, _v6d = _prefix(6)
_path, _pathd = _text("an executable path")
_comm, _commd = _text("a command name (comm)")
_sysctl, _sysctld = _text("a sysctl name like \"kernel/modprobe\"")

KINDS: dict[str, ListKind] = {k.name: k for k in (
    ListKind("ipv4_prefix", ("lpm_trie",), lambda n: n == 8, "8 bytes (u32 prefixlen + 4-byte address)",
             _v4, _v4d, "\"192.0.2.0/24\""),
    ListKind("ipv6_prefix", ("lpm_trie",), lambda n: n == 20, "20 bytes (u32 prefixlen + 16-byte address)",
             _v6, _v6d, "\"2001:db8::/32\""),
    ListKind("exe_path", ("hash", "lru_hash"), lambda n: n >= 32, "a char array of at least 32 bytes",
             _path, _pathd, "\"/usr/sbin/cryptsetup\""),
    ListKind("path", ("hash", "lru_hash"), lambda n: n >= 32, "a char array of at least 32 bytes",
             _path, _pathd, "\"/etc/shadow\""),
    ListKind("comm", ("hash", "lru_hash"), lambda n: n == 16, "16 bytes (TASK_COMM_LEN)",
             _comm, _commd, "\"cryptsetup\""),
    ListKind("cgroup_id", ("hash", "lru_hash"), lambda n: n == 8, "8 bytes (u64)",
             _cgroup_id, lambda k: str(struct.unpack_from("<Q", k)[0]), "\"/sys/fs/cgroup/system.slice\""),
    ListKind("device", ("hash",), lambda n: n == 12, "12 bytes (u32 type, major, minor)",
             _device, _decode_device, "\"c 1:3\""),
    ListKind("sysctl_name", ("hash",), lambda n: n >= 32, "a char array of at least 32 bytes",
             _sysctl, _sysctld, "\"kernel/modprobe\""),
    ListKind("address_family", ("hash", "array"), lambda n: n == 4, "4 bytes (u32)",
             _family, _decode_family, "\"AF_ALG\""),
)}


def encode_entries(kind: ListKind, entries, key_size: int) -> tuple[list[bytes], list[str]]:
    """-> (keys, problems as "[i]: message"). Duplicates are fine (a set)."""
    if not isinstance(entries, list):
        return [], [f": expected an array of entries like [{kind.example}], got {entries!r}"]
    keys, problems = [], []
    for i, entry in enumerate(entries):
        try:
            keys.append(kind.encode(entry, key_size))
        except ValueError as e:
            problems.append(f"[{i}]: {e}")
    return list(dict.fromkeys(keys)), problems
