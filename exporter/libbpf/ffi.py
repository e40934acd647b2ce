"""ctypes prototypes for libbpf.so.1, libbpf's print hook, and the error type."""
from __future__ import annotations

import ctypes as C
import errno as errno_mod
import os
import threading


lib = C.CDLL("libbpf.so.1", use_errno=True)

_PRINT_FN = C.CFUNCTYPE(C.c_int, C.c_int, C.c_char_p, C.c_void_p)
RINGBUF_FN = C.CFUNCTYPE(C.c_int, C.c_void_p, C.c_void_p, C.c_size_t)
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


def fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


P = C.c_void_p
open_file = fn("bpf_object__open_file", P, C.c_char_p, P)
obj_load = fn("bpf_object__load", C.c_int, P)
obj_close = fn("bpf_object__close", None, P)
obj_btf = fn("bpf_object__btf", P, P)
next_map = fn("bpf_object__next_map", P, P, P)
next_prog = fn("bpf_object__next_program", P, P, P)
map_name = fn("bpf_map__name", C.c_char_p, P)
map_type = fn("bpf_map__type", C.c_int, P)
map_key_size = fn("bpf_map__key_size", C.c_uint32, P)
map_value_size = fn("bpf_map__value_size", C.c_uint32, P)
map_max_entries = fn("bpf_map__max_entries", C.c_uint32, P)
map_key_type_id = fn("bpf_map__btf_key_type_id", C.c_uint32, P)
map_value_type_id = fn("bpf_map__btf_value_type_id", C.c_uint32, P)
map_fd = fn("bpf_map__fd", C.c_int, P)
map_initial_value = fn("bpf_map__initial_value", P, P, C.POINTER(C.c_size_t))
map_reuse_fd = fn("bpf_map__reuse_fd", C.c_int, P, C.c_int)
map_pin = fn("bpf_map__pin", C.c_int, P, C.c_char_p)
prog_name = fn("bpf_program__name", C.c_char_p, P)
prog_section = fn("bpf_program__section_name", C.c_char_p, P)
prog_type = fn("bpf_program__type", C.c_int, P)
prog_fd = fn("bpf_program__fd", C.c_int, P)
prog_set_autoload = fn("bpf_program__set_autoload", C.c_int, P, C.c_bool)
prog_set_log_buf = fn("bpf_program__set_log_buf", C.c_int, P, C.c_char_p, C.c_size_t)
prog_attach = fn("bpf_program__attach", P, P)
prog_attach_xdp = fn("bpf_program__attach_xdp", P, P, C.c_int)
prog_attach_cgroup = fn("bpf_program__attach_cgroup", P, P, C.c_int)
link_pin = fn("bpf_link__pin", C.c_int, P, C.c_char_p)
link_destroy = fn("bpf_link__destroy", C.c_int, P)
btf_type_cnt = fn("btf__type_cnt", C.c_uint32, P)
btf_type_by_id = fn("btf__type_by_id", P, P, C.c_uint32)
btf_name = fn("btf__name_by_offset", C.c_char_p, P, C.c_uint32)
prog_type_str = fn("libbpf_bpf_prog_type_str", C.c_char_p, C.c_int)
map_type_str = fn("libbpf_bpf_map_type_str", C.c_char_p, C.c_int)
probe_prog_type = fn("libbpf_probe_bpf_prog_type", C.c_int, C.c_int, P)
num_possible_cpus = fn("libbpf_num_possible_cpus", C.c_int)
lookup_batch = fn("bpf_map_lookup_batch", C.c_int, C.c_int, P, P, P, P, C.POINTER(C.c_uint32), P)
update_batch = fn("bpf_map_update_batch", C.c_int, C.c_int, P, P, C.POINTER(C.c_uint32), P)
get_next_key = fn("bpf_map_get_next_key", C.c_int, C.c_int, P, P)
lookup_elem = fn("bpf_map_lookup_elem", C.c_int, C.c_int, P, P)
update_elem = fn("bpf_map_update_elem", C.c_int, C.c_int, P, P, C.c_uint64)
delete_elem = fn("bpf_map_delete_elem", C.c_int, C.c_int, P)
obj_get_info = fn("bpf_obj_get_info_by_fd", C.c_int, C.c_int, P, C.POINTER(C.c_uint32))
enable_stats = fn("bpf_enable_stats", C.c_int, C.c_int)
ringbuf_new = fn("ring_buffer__new", P, C.c_int, RINGBUF_FN, P, P)
ringbuf_consume = fn("ring_buffer__consume", C.c_int, P)
ringbuf_poll = fn("ring_buffer__poll", C.c_int, P, C.c_int)
ringbuf_free = fn("ring_buffer__free", None, P)
_strerror = fn("libbpf_strerror", C.c_int, C.c_int, C.c_char_p, C.c_size_t)


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


lib.libbpf_set_print.restype = P
lib.libbpf_set_print.argtypes = [_PRINT_FN]
lib.libbpf_set_print(_print)


class Capture:
    def __enter__(self):
        self.saved = getattr(_messages, "sink", None)
        _messages.sink = self.lines = []
        return self.lines

    def __exit__(self, *exc):
        _messages.sink = self.saved


def check(rc: int, what: str, lines=None, log: str = "") -> int:
    if rc < 0:
        raise LibbpfError(what, -rc if rc != -1 else C.get_errno(), lines, log)
    return rc


def check_ptr(ptr, what: str, lines=None):
    if not ptr:
        raise LibbpfError(what, C.get_errno() or errno_mod.EINVAL, lines)
    return ptr


