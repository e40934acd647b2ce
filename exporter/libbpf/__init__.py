"""The libbpf boundary: the only code in bpfleet that talks to libbpf.so.1.

A thin ctypes shell returning plain Python data; nothing outside this package sees a pointer.
Failures raise `LibbpfError` carrying the errno, libbpf's own messages and, for loads, the
verifier log, so callers can report them with an address.
"""
from __future__ import annotations

import ctypes as C
import functools
from dataclasses import dataclass

from . import ffi, uapi
from .ffi import LibbpfError
from .maps import MapReader, RingBuffer, delete, keys, lookup, update, update_batch
from .obj import BpfObject, MapInfo, ProgramInfo

__all__ = ["BpfObject", "KernelStats", "LibbpfError", "MapInfo", "MapReader", "ProgramInfo",
           "RingBuffer", "delete", "enable_stats", "keys", "lookup", "num_possible_cpus", "probe_prog_type",
           "prog_stats", "update", "update_batch"]


@dataclass(frozen=True)
class KernelStats:
    run_time_ns: int
    run_cnt: int
    recursion_misses: int


@functools.cache
def prog_type_ids() -> dict[str, int]:
    names = {}
    for t in range(64):
        s = ffi.prog_type_str(t)
        if s:
            names[s.decode()] = t
    return names


@functools.cache
def probe_prog_type(name: str) -> bool:
    """Can this kernel load programs of the libbpf-named type `name` ("tracepoint", "lsm", ...)?"""
    t = prog_type_ids().get(name)
    return t is not None and ffi.probe_prog_type(t, None) == 1


def map_type_name(type_id: int) -> str:
    """libbpf's name of a BPF map type number ("hash", "percpu_array", ...)."""
    name = ffi.map_type_str(type_id)
    return name.decode() if name else f"map type {type_id}"


def known_prog_types() -> set[str]:
    return set(prog_type_ids())


@functools.cache
def num_possible_cpus() -> int:
    return ffi.check(ffi.num_possible_cpus(), "libbpf_num_possible_cpus")


def enable_stats() -> int:
    """Turn on kernel BPF run-time stats for as long as the returned fd stays open.

    The kernel turns them off again when the fd closes, also when we crash, so there is
    nothing to restore by hand."""
    return ffi.check(ffi.enable_stats(uapi.BPF_STATS_RUN_TIME), "bpf_enable_stats")


def prog_stats(prog_fd: int) -> KernelStats:
    info = uapi.bpf_prog_info()
    n = C.c_uint32(C.sizeof(info))
    ffi.check(ffi.obj_get_info(prog_fd, C.byref(info), C.byref(n)), "bpf_obj_get_info_by_fd")
    return KernelStats(info.run_time_ns, info.run_cnt, info.recursion_misses)
