"""ctypes types (what bcc gives a table's Key and Leaf) → BTF-shaped records (core/btf.py).

bcc tables carry no BTF, but bcc describes each table's key and value as ctypes classes with the
C field names. Turning those into the same RawType records libbpf reads from a CO-RE object's BTF
lets schema.bind, the decoders and the collectors treat bcc tables exactly like CO-RE maps.
Pure: no bcc import; any ctypes type works.
"""
from __future__ import annotations

import ctypes as C

from core import btf
from core.btf import RawType

_UNSIGNED, _SIGNED = "BHILQ", "bhilq"


class Records:
    """A growing BTF record list (index = type id; 0 is void), one id per distinct ctypes type."""

    def __init__(self):
        self.records: list[RawType | None] = [None]
        self._ids: dict[object, int] = {}

    def add(self, t) -> int:
        if t in self._ids:
            return self._ids[t]
        self._ids[t] = tid = len(self.records)
        self.records.append(None)            # reserve: structs may refer to themselves
        self.records[tid] = self._record(t)
        return tid

    def _record(self, t) -> RawType:
        if isinstance(t, type) and issubclass(t, C.Array):
            return RawType("array", "", 0, 0, False, (self.add(t._type_), t._length_))
        if isinstance(t, type) and issubclass(t, (C.Structure, C.Union)):
            members = []
            for f in t._fields_:
                name, ftype = f[0], f[1]
                if len(f) == 3 or name.startswith("__pad_"):
                    continue   # bitfields can't be labels or values; __pad_N/__pad_end: bcc's padding
                members.append((name, self.add(ftype), getattr(t, name).offset * 8, 0))
            kind = "union" if issubclass(t, C.Union) else "struct"
            return RawType(kind, t.__name__, C.sizeof(t), 0, False, tuple(members))
        code = getattr(t, "_type_", None)
        if isinstance(code, str) and code in _UNSIGNED + _SIGNED + "c?":
            enc = (btf.INT_SIGNED if code in _SIGNED else 0) | (btf.INT_CHAR if code == "c" else 0) \
                | (btf.INT_BOOL if code == "?" else 0)
            return RawType("int", t.__name__, C.sizeof(t), 0, False, (enc, 0, C.sizeof(t) * 8))
        if isinstance(code, type) or code in ("P", "z", "Z"):   # pointers: addresses
            return RawType("int", "unsigned long", 8, 0, False, (0, 0, 64))
        raise TypeError(f"ctypes type {t!r} has no BTF equivalent here")
