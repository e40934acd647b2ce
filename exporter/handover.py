"""How one version of a program hands over to the next without losing or double-counting.

1. Maps whose type, sizes and BTF layout are unchanged are shared (`bpf_map__reuse_fd`), and so
   is `.bss`/`.data` when its variables are unchanged: counts carry over without copying.
2. Programs built with `BPFLEET_GATE()` (programs/include/bpfleet.h) count only while the shared
   `bpfleet_gate` map holds their generation. The new version is attached while the gate still
   names the old one, then the gate flips in one map write — the commit point — then the old
   version is detached. Every event is counted by exactly one version.
Programs without the gate still hand over, with a brief overlap in which both versions count.
"""
from __future__ import annotations

from core import btf
from exporter import libbpf

GATE_MAP = "bpfleet_gate"
GENERATION = "bpfleet_generation"
SHAREABLE_SECTIONS = (".bss", ".data")   # never .rodata: it holds the new version's knobs


def set_generation(obj: libbpf.BpfObject, generation: int) -> bool:
    """Before load: tell a gated object its generation. -> whether the object is gated."""
    var = btf.datasec_vars(obj.btf_records(), ".rodata").get(GENERATION)
    if var is None or GATE_MAP not in obj.maps():
        return False
    obj.write_initial(obj.section_map(".rodata"), var[0], generation.to_bytes(8, "little"))
    return True


def open_gate(obj: libbpf.BpfObject, generation: int) -> None:
    """Let `generation` count (and every other version stop)."""
    libbpf.update(obj.map_fd(GATE_MAP), b"\0\0\0\0", generation.to_bytes(8, "little"))


def reuse_maps(obj: libbpf.BpfObject, old: libbpf.BpfObject) -> list[str]:
    """Before load: share the old version's maps where layouts match. -> names shared."""
    new_maps, old_maps = obj.maps(), old.maps()
    new_btf, old_btf = obj.btf_records(), old.btf_records()
    reused = []
    for name, info in new_maps.items():
        old_name = _counterpart(name, old)
        prev = old_maps.get(old_name) if old_name else None
        if prev is None or info.type == "ringbuf":
            continue
        same_shape = (info.type, info.key_size, info.value_size, info.max_entries) == \
                     (prev.type, prev.key_size, prev.value_size, prev.max_entries)
        if not same_shape:
            continue
        if "." in name:
            section = name[name.index("."):]
            same = btf.datasec_vars(new_btf, section) == btf.datasec_vars(old_btf, section)
        else:
            same = _same_type(new_btf, info.key_type_id, old_btf, prev.key_type_id) and \
                _same_type(new_btf, info.value_type_id, old_btf, prev.value_type_id)
        if same:
            obj.reuse_map(name, old.map_fd(old_name))
            reused.append(name)
    return reused


def _counterpart(name: str, old: libbpf.BpfObject) -> str | None:
    """The old object's map for `name`: same name, or for data sections the same section."""
    if "." not in name:
        return name
    section = name[name.index("."):]
    return old.section_map(section) if section in SHAREABLE_SECTIONS else None


def _same_type(a_recs, a_id, b_recs, b_id) -> bool:
    if not a_id or not b_id:
        return a_id == b_id
    return btf.resolve(a_recs, a_id) == btf.resolve(b_recs, b_id)
