"""Kernel feature probes through libbpf: program types, helpers, BPF trampolines, the kernel's BTF.

Plain answers (bool, int, None) for exporter/kernel_features.py, which turns them into reasons. Every
probe loads at most one tiny program and closes it at once; results are cached per process
(the kernel does not change under us)."""
from __future__ import annotations

import ctypes as C
import functools
import os

from . import ffi
from .obj import read_btf_type

_btf_load_vmlinux = ffi.fn("btf__load_vmlinux_btf", C.c_void_p)
_btf_free = ffi.fn("btf__free", None, C.c_void_p)
_btf_parse = ffi.fn("btf__parse", C.c_void_p, C.c_char_p, C.c_void_p)
_btf_find = ffi.fn("btf__find_by_name_kind", C.c_int, C.c_void_p, C.c_char_p, C.c_uint32)
_probe_helper = ffi.fn("libbpf_probe_bpf_helper", C.c_int, C.c_int, C.c_int, C.c_void_p)
_prog_load = ffi.fn("bpf_prog_load", C.c_int, C.c_int, C.c_char_p, C.c_char_p, C.c_void_p,
                     C.c_size_t, C.c_void_p)
_libc = C.CDLL(None, use_errno=True)

BTF_KIND_TYPEDEF, BTF_KIND_ENUM, BTF_KIND_FUNC = 8, 6, 12
BPF_PROG_TYPE_TRACING = 26
ATTACH_TYPES = {"fentry": 24, "fexit": 25, "fmod_ret": 26}   # enum bpf_attach_type
# r0 = 0; exit
_RETURN_0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


class _ProgLoadOpts(C.Structure):
    """struct bpf_prog_load_opts (libbpf 1.x bpf.h); `sz` tells libbpf how much of it we know."""
    _fields_ = [("sz", C.c_size_t), ("attempts", C.c_int), ("expected_attach_type", C.c_int),
                ("prog_btf_fd", C.c_uint32), ("prog_flags", C.c_uint32),
                ("prog_ifindex", C.c_uint32), ("kern_version", C.c_uint32),
                ("attach_btf_id", C.c_uint32), ("attach_prog_fd", C.c_uint32),
                ("attach_btf_obj_fd", C.c_uint32)]


class _VmlinuxBtf:
    def __init__(self):
        with ffi.Capture():
            self.ptr = _btf_load_vmlinux()

    def find(self, name: str, kind: int) -> int | None:
        if not self.ptr:
            return None
        i = _btf_find(self.ptr, name.encode(), kind)
        return i if i > 0 else None


@functools.cache
def _vmlinux() -> _VmlinuxBtf:
    return _VmlinuxBtf()


def release_kernel_btf() -> None:
    """Free the parsed kernel BTF (~6 MB) until a probe needs it again: a batch of probes
    shares one parse (~55 ms), the exporter does not keep it while it serves."""
    if _vmlinux.cache_info().currsize:
        if _vmlinux().ptr:
            _btf_free(_vmlinux().ptr)
        _vmlinux.cache_clear()
        ffi.release_freed_memory()


def kernel_btf_held() -> bool:
    """Is the parsed kernel BTF held right now (between a probe and release_kernel_btf())?"""
    return bool(_vmlinux.cache_info().currsize)


@functools.cache
def kernel_btf() -> bool:
    """Does the running kernel describe itself in BTF (what libbpf finds: /sys/kernel/btf/vmlinux)?"""
    return bool(_vmlinux().ptr)


def btf_file_error(path: str) -> str | None:
    """None if libbpf can parse `path` as a BTF file (raw or an ELF with .BTF), else why not."""
    with ffi.Capture() as lines:
        btf = _btf_parse(os.fsencode(path), None)
    if btf:
        _btf_free(btf)
        return None
    return "; ".join(l.removeprefix("libbpf: ") for l in lines[-2:]) or "libbpf cannot parse it as BTF"


@functools.cache
def btf_func(name: str) -> bool | None:
    """Is `name` a function in the kernel's BTF (a fentry/fexit target)? None: no kernel BTF."""
    return None if not kernel_btf() else _vmlinux().find(name, BTF_KIND_FUNC) is not None


@functools.cache
def btf_typedef(name: str) -> bool | None:
    return None if not kernel_btf() else _vmlinux().find(name, BTF_KIND_TYPEDEF) is not None


@functools.cache
def helper_id(name: str) -> int | None:
    """BPF_FUNC_<name>'s number, from the kernel's enum bpf_func_id (None: not in this kernel)."""
    enum_id = _vmlinux().find("bpf_func_id", BTF_KIND_ENUM)
    if enum_id is None:
        return None
    t = read_btf_type(_vmlinux().ptr, enum_id)
    return dict(t.items).get(f"BPF_FUNC_{name}")


@functools.cache
def probe_helper(prog_type: int, helper: int) -> bool:
    with ffi.Capture():
        return _probe_helper(prog_type, helper, None) == 1


@functools.cache
def probe_trampoline(attach: str, func: str) -> int:
    """Load (never attach) a `return 0` program of `attach` type ("fentry", "fexit", "fmod_ret")
    on `func`. -> 0 if the kernel accepts it, else the errno it refused with (EPERM: no BPF
    trampolines on this kernel; ENOENT: no such function in BTF)."""
    btf_id = _vmlinux().find(func, BTF_KIND_FUNC)
    if btf_id is None:
        return 2
    opts = _ProgLoadOpts(sz=C.sizeof(_ProgLoadOpts), expected_attach_type=ATTACH_TYPES[attach],
                         attach_btf_id=btf_id)
    insns = C.create_string_buffer(_RETURN_0, len(_RETURN_0))
    with ffi.Capture():
        fd = _prog_load(BPF_PROG_TYPE_TRACING, b"bpfleet_probe", b"GPL", insns, 2, C.byref(opts))
    if fd >= 0:
        os.close(fd)
        return 0
    return -fd if fd != -1 else C.get_errno()
