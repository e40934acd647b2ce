"""ctypes prototypes for libbpf.so.1, libbpf's print hook, and the error type."""
from __future__ import annotations

import ctypes as C
import errno as errno_mod
import os
import threading


_lib = C.CDLL("libbpf.so.1", use_errno=True)

_PRINT_FN = C.CFUNCTYPE(C.c_int, C.c_int, C.c_char_p, C.c_void_p)
_RINGBUF_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_size_t)
_libc = C.CDLL(None, use_errno=True)
_libc.vsnprintf.argtypes = [C.c_char_p, C.c_size_t, C.c_char_p, C.c_void_p]


def release_freed_memory() -> None:
    """Hand the pages of freed C heap back to the kernel (glibc's malloc_trim). libbpf parses
    the kernel's BTF (~6 MB) for every object it loads and frees it after, but glibc keeps
    freed pages between live allocations mapped: ~8 MB of the exporter's RSS once the
    built-ins are loaded (bench/bench_rss.py). A no-op on a libc without malloc_trim."""
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


P = C.c_void_p
_open_file = _fn("bpf_object__open_file", P, C.c_char_p, P)
_obj_load = _fn("bpf_object__load", C.c_int, P)
_obj_close = _fn("bpf_object__close", None, P)
_obj_btf = _fn("bpf_object__btf", P, P)
_next_map = _fn("bpf_object__next_map", P, P, P)
_next_prog = _fn("bpf_object__next_program", P, P, P)
_map_name = _fn("bpf_map__name", C.c_char_p, P)
_map_type = _fn("bpf_map__type", C.c_int, P)
_map_key_size = _fn("bpf_map__key_size", C.c_uint32, P)
_map_value_size = _fn("bpf_map__value_size", C.c_uint32, P)
_map_max_entries = _fn("bpf_map__max_entries", C.c_uint32, P)
_map_key_type_id = _fn("bpf_map__btf_key_type_id", C.c_uint32, P)
_map_value_type_id = _fn("bpf_map__btf_value_type_id", C.c_uint32, P)
_map_fd = _fn("bpf_map__fd", C.c_int, P)
_map_initial_value = _fn("bpf_map__initial_value", P, P, C.POINTER(C.c_size_t))
_map_reuse_fd = _fn("bpf_map__reuse_fd", C.c_int, P, C.c_int)
_map_pin = _fn("bpf_map__pin", C.c_int, P, C.c_char_p)
_prog_name = _fn("bpf_program__name", C.c_char_p, P)
_prog_section = _fn("bpf_program__section_name", C.c_char_p, P)
_prog_type = _fn("bpf_program__type", C.c_int, P)
_prog_fd = _fn("bpf_program__fd", C.c_int, P)
_prog_set_autoload = _fn("bpf_program__set_autoload", C.c_int, P, C.c_bool)
_prog_set_log_buf = _fn("bpf_program__set_log_buf", C.c_int, P, C.c_char_p, C.c_size_t)
_prog_attach = _fn("bpf_program__attach", P, P)
_prog_attach_xdp = _fn("bpf_program__attach_xdp", P, P, C.c_int)
_prog_attach_cgroup = _fn("bpf_program__attach_cgroup", P, P, C.c_int)
_link_pin = _fn("bpf_link__pin", C.c_int, P, C.c_char_p)
_link_destroy = _fn("bpf_link__destroy", C.c_int, P)
_btf_type_cnt = _fn("btf__type_cnt", C.c_uint32, P)
_btf_type_by_id = _fn("btf__type_by_id", P, P, C.c_uint32)
_btf_name = _fn("btf__name_by_offset", C.c_char_p, P, C.c_uint32)
_prog_type_str = _fn("libbpf_bpf_prog_type_str", C.c_char_p, C.c_int)
_map_type_str = _fn("libbpf_bpf_map_type_str", C.c_char_p, C.c_int)
_probe_prog_type = _fn("libbpf_probe_bpf_prog_type", C.c_int, C.c_int, P)
_num_possible_cpus = _fn("libbpf_num_possible_cpus", C.c_int)
_lookup_batch = _fn("bpf_map_lookup_batch", C.c_int, C.c_int, P, P, P, P, C.POINTER(C.c_uint32), P)
_update_batch = _fn("bpf_map_update_batch", C.c_int, C.c_int, P, P, C.POINTER(C.c_uint32), P)
_get_next_key = _fn("bpf_map_get_next_key", C.c_int, C.c_int, P, P)
_lookup_elem = _fn("bpf_map_lookup_elem", C.c_int, C.c_int, P, P)
_update_elem = _fn("bpf_map_update_elem", C.c_int, C.c_int, P, P, C.c_uint64)
_delete_elem = _fn("bpf_map_delete_elem", C.c_int, C.c_int, P)
_obj_get_info = _fn("bpf_obj_get_info_by_fd", C.c_int, C.c_int, P, C.POINTER(C.c_uint32))
_enable_stats = _fn("bpf_enable_stats", C.c_int, C.c_int)
_ringbuf_new = _fn("ring_buffer__new", P, C.c_int, _RINGBUF_FN, P, P)
_ringbuf_consume = _fn("ring_buffer__consume", C.c_int, P)
_ringbuf_poll = _fn("ring_buffer__poll", C.c_int, P, C.c_int)
_ringbuf_free = _fn("ring_buffer__free", None, P)
_strerror = _fn("libbpf_strerror", C.c_int, C.c_int, C.c_char_p, C.c_size_t)


class LibbpfError(Exception):
    """A libbpf call failed. `messages` holds what libbpf printed meanwhile."""

    def __init__(self, what: str, err: int, messages: list[str] | None = None, log: str = ""):
        self.what, self.errno, self.messages, self.log = what, err, messages or [], log
        super().__init__(f"{what}: {describe_error(err)}")

    def explain(self, last: int = 3) -> str:
        """The error with libbpf's own last words, which usually say why."""
        # libbpf's "try raising 'ulimit -l'" guess is wrong on every kernel since 5.11 (memcg accounting)
        useful = [m for m in self.messages if "ulimit" not in m and "LOAD LOG" not in m]
        said = "; ".join(m.removeprefix("libbpf: ") for m in useful[-last:])
        return f"{self}" + (f" (libbpf: {said})" if said else "")


def describe_error(err: int) -> str:
    """errno names plus libbpf's own codes (>= 4000, e.g. LIBBPF_ERRNO__FORMAT)."""
    if err >= 4000:
        buf = C.create_string_buffer(256)
        _strerror(err, buf, len(buf))
        return buf.value.decode(errors="replace")
    return f"{errno_mod.errorcode.get(err, err)} ({os.strerror(err)})"


# libbpf prints through one process-wide callback; collect per thread so concurrent
# loads don't mix their messages.
_messages = threading.local()


@_PRINT_FN
def _print(level, fmt, args):
    buf = C.create_string_buffer(2048)
    _libc.vsnprintf(buf, len(buf), fmt, args)
    text = buf.value.decode(errors="replace").rstrip("\n")
    sink = getattr(_messages, "sink", None)
    if sink is not None and level <= 1:  # warnings and info; debug is verifier noise
        sink.append(text)
    return 0


_lib.libbpf_set_print.restype = P
_lib.libbpf_set_print.argtypes = [_PRINT_FN]
_lib.libbpf_set_print(_print)


class _Capture:
    def __enter__(self):
        self.saved = getattr(_messages, "sink", None)
        _messages.sink = self.lines = []
        return self.lines

    def __exit__(self, *exc):
        _messages.sink = self.saved


def _check(rc: int, what: str, lines=None, log: str = "") -> int:
    if rc < 0:
        raise LibbpfError(what, -rc if rc != -1 else C.get_errno(), lines, log)
    return rc


def _check_ptr(ptr, what: str, lines=None):
    if not ptr:
        raise LibbpfError(what, C.get_errno() or errno_mod.EINVAL, lines)
    return ptr


