"""One BPF object file through libbpf: open, inspect, set knobs, load, attach, pin, close."""
from __future__ import annotations

import ctypes as C
import os
import re
import socket
from dataclasses import dataclass

from core.btf import RawType
from . import ffi, uapi
from .ffi import LibbpfError

VERIFIER_LOG_SIZE = 1 << 20


@dataclass(frozen=True)
class MapInfo:
    name: str
    type: str           # libbpf's name: "hash", "percpu_array", "ringbuf", ".bss" maps are "array"
    key_size: int
    value_size: int
    max_entries: int
    key_type_id: int
    value_type_id: int


@dataclass(frozen=True)
class ProgramInfo:
    name: str
    section: str
    type: str           # libbpf's name: "tracepoint", "raw_tracepoint", "tracing", "lsm", ...


def _str(b) -> str:
    return b.decode() if b else ""


def _iter(next_fn, obj):
    cur = None
    while True:
        cur = next_fn(obj, cur)
        if not cur:
            return
        yield cur


class _OpenOpts(C.Structure):
    """The head of struct bpf_object_open_opts (libbpf 1.x), up to btf_custom_path."""
    _fields_ = [("sz", C.c_size_t), ("object_name", C.c_char_p), ("relaxed_maps", C.c_bool),
                ("pin_root_path", C.c_char_p), ("_attach_prog_fd", C.c_uint32),
                ("kconfig", C.c_char_p), ("btf_custom_path", C.c_char_p)]


class BpfObject:
    """An opened (and later loaded) BPF ELF object. Not thread-safe; one owner at a time.

    `btf_custom_path`: a BTF file describing the running kernel, for CO-RE relocations on a
    kernel without its own BTF (btfhub style)."""

    def __init__(self, path: str, btf_custom_path: str | None = None):
        self.path, self.btf_custom_path = path, btf_custom_path
        opts = None
        if btf_custom_path:
            opts = _OpenOpts(sz=C.sizeof(_OpenOpts), btf_custom_path=os.fsencode(btf_custom_path))
            self._opts = opts   # libbpf keeps the path string until load
        with ffi.Capture() as lines:
            self._obj = ffi.check_ptr(ffi.open_file(os.fsencode(path), C.byref(opts) if opts else None),
                                       f"open {path}", lines)
        self._maps = {_str(ffi.map_name(m)): m for m in _iter(ffi.next_map, self._obj)}
        self._progs = {_str(ffi.prog_name(p)): p for p in _iter(ffi.next_prog, self._obj)}
        self._log_bufs: dict[str, C.Array] = {}
        self._links: list[int] = []
        self.loaded = False

    # ---- inspection (no privileges needed) ----
    def maps(self) -> dict[str, MapInfo]:
        return {name: MapInfo(name, _str(ffi.map_type_str(ffi.map_type(m))),
                              ffi.map_key_size(m), ffi.map_value_size(m),
                              ffi.map_max_entries(m), ffi.map_key_type_id(m),
                              ffi.map_value_type_id(m))
                for name, m in self._maps.items()}

    def programs(self) -> list[ProgramInfo]:
        return [ProgramInfo(name, _str(ffi.prog_section(p)),
                            _str(ffi.prog_type_str(ffi.prog_type(p))))
                for name, p in self._progs.items()]

    def btf_records(self) -> list[RawType | None]:
        """Every BTF type of the object as plain records; index = BTF type id (0 is void)."""
        btf = ffi.obj_btf(self._obj)
        if not btf:
            return [None]
        return [None] + [read_btf_type(btf, i) for i in range(1, ffi.btf_type_cnt(btf))]

    def section_map(self, section: str) -> str | None:
        """libbpf names a data section's map "<object prefix><section>", e.g. "syscalls.rodata"."""
        return next((n for n in self._maps if n.endswith(section) and "." in n), None)

    # ---- before load ----
    def write_initial(self, map_name: str, offset: int, data: bytes) -> None:
        """Patch a global's initial value (a `const volatile` knob lives in .rodata)."""
        size = C.c_size_t()
        ptr = ffi.check_ptr(ffi.map_initial_value(self._maps[map_name], C.byref(size)),
                             f"initial value of {map_name}")
        if offset + len(data) > size.value:
            raise LibbpfError(f"knob at {map_name}+{offset} beyond section size {size.value}", 22)
        C.memmove(ptr + offset, data, len(data))

    def reuse_map(self, map_name: str, fd: int) -> None:
        ffi.check(ffi.map_reuse_fd(self._maps[map_name], fd), f"reuse map {map_name}")

    def set_autoload(self, prog_name: str, on: bool) -> None:
        ffi.check(ffi.prog_set_autoload(self._progs[prog_name], on), f"autoload {prog_name}")

    def load(self) -> None:
        """Load into the kernel; on failure the error carries the tail of the verifier log."""
        for name, p in self._progs.items():
            buf = C.create_string_buffer(VERIFIER_LOG_SIZE)
            self._log_bufs[name] = buf
            ffi.prog_set_log_buf(p, buf, VERIFIER_LOG_SIZE)
        with ffi.Capture() as lines:
            rc = ffi.obj_load(self._obj)
        # libbpf asks the kernel for a log only when a load fails: a filled buffer names the culprit.
        failed = [(n, b.value.decode(errors="replace")) for n, b in self._log_bufs.items() if b.value]
        self._log_bufs.clear()  # 1 MiB each; not needed after load
        ffi.release_freed_memory()   # the kernel BTF libbpf parsed for CO-RE, and those buffers
        # Refusals without a verifier log (EPERM for fentry or lsm, say) are named in libbpf's messages.
        failed += [(m.group(1), "") for line in lines
                   if (m := re.search(r"prog '(\w+)': BPF program load failed", line)) and m.group(1) in self._progs]
        if rc < 0 and failed:
            name, log = failed[0]
            section = _str(ffi.prog_section(self._progs[name]))
            raise LibbpfError(f"load program {name} (SEC(\"{section}\")) of {self.path}",
                              -rc, lines, log)
        ffi.check(rc, f"load {self.path}", lines)
        self.loaded = True

    # ---- after load ----
    def attach_all(self, interfaces: tuple[str, ...] = (), cgroup: str | None = None) -> None:
        """Attach every loaded program; all or nothing. XDP programs attach to each of
        `interfaces`, cgroup programs to the cgroup v2 directory `cgroup`; the rest by section."""
        for name, p in self._progs.items():
            if ffi.prog_fd(p) < 0:  # autoload disabled
                continue
            kind = _str(ffi.prog_type_str(ffi.prog_type(p)))
            for target, attach in self._attach_calls(name, p, kind, interfaces, cgroup):
                with ffi.Capture() as lines:
                    link = attach()
                if not link:
                    err = C.get_errno()
                    self.detach_all()
                    raise LibbpfError(f"attach program {name}{target}", err or 22, lines)
                self._links.append(link)

    def _attach_calls(self, name, p, kind, interfaces, cgroup):
        if kind == "xdp":
            if not interfaces:
                raise LibbpfError(f"attach program {name}: an XDP program needs interfaces to attach to", 22)
            for ifname in interfaces:
                try:
                    ifindex = socket.if_nametoindex(ifname)
                except OSError:
                    self.detach_all()
                    raise LibbpfError(f"attach program {name} to interface {ifname!r}: no such interface", 19)
                yield f" to interface {ifname}", lambda i=ifindex: ffi.prog_attach_xdp(p, i)
        elif kind.startswith("cgroup"):
            if not cgroup:
                raise LibbpfError(f"attach program {name}: a {kind} program needs a cgroup to attach to", 22)
            try:
                fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as e:
                self.detach_all()
                raise LibbpfError(f"attach program {name} to cgroup {cgroup}", e.errno)
            try:
                yield f" to cgroup {cgroup}", lambda: ffi.prog_attach_cgroup(p, fd)
            finally:
                os.close(fd)   # the link holds the cgroup
        else:
            yield "", lambda: ffi.prog_attach(p)

    def detach_all(self) -> None:
        while self._links:
            ffi.link_destroy(self._links.pop())

    @property
    def attached(self) -> bool:
        return bool(self._links)

    def pin(self, directory: str, links: bool = True) -> None:
        """Pin maps (and `links`) under `directory` so they are visible to bpftool and survive us."""
        os.makedirs(directory, exist_ok=True)
        for name, m in self._maps.items():
            if "." not in name:  # data sections are internal to the object
                ffi.check(ffi.map_pin(m, os.fsencode(f"{directory}/map_{name}")), f"pin map {name}")
        for i, link in enumerate(self._links if links else ()):
            ffi.check(ffi.link_pin(link, os.fsencode(f"{directory}/link_{i}")), f"pin link {i}")

    def map_fd(self, name: str) -> int:
        return ffi.map_fd(self._maps[name])

    def program_fds(self) -> dict[str, int]:
        return {n: fd for n, p in self._progs.items() if (fd := ffi.prog_fd(p)) >= 0}

    def close(self) -> None:
        if self._obj:
            self.detach_all()
            ffi.obj_close(self._obj)
            self._obj = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_btf_type(btf, type_id: int) -> RawType:
    ptr = ffi.btf_type_by_id(btf, type_id)
    t = uapi.btf_type.from_address(ptr)
    kind = uapi.BTF_KIND.get((t.info >> 24) & 0x1F, "unknown")
    vlen, kflag = t.info & 0xFFFF, bool(t.info >> 31)
    name = _str(ffi.btf_name(btf, t.name_off))
    tail = ptr + C.sizeof(uapi.btf_type)
    items: tuple = ()
    if kind == "int":
        enc = C.c_uint32.from_address(tail).value
        items = ((enc >> 24) & 0xF, (enc >> 16) & 0xFF, enc & 0xFF)
    elif kind == "array":
        a = uapi.btf_array.from_address(tail)
        items = (a.type, a.nelems)
    elif kind in ("struct", "union"):
        ms = (uapi.btf_member * vlen).from_address(tail)
        items = tuple((_str(ffi.btf_name(btf, m.name_off)), m.type,
                       m.offset & 0xFFFFFF if kflag else m.offset,
                       m.offset >> 24 if kflag else 0) for m in ms)
    elif kind == "enum":
        es = (uapi.btf_enum * vlen).from_address(tail)
        items = tuple((_str(ffi.btf_name(btf, e.name_off)), e.val) for e in es)
    elif kind == "enum64":
        es = (uapi.btf_enum64 * vlen).from_address(tail)
        items = tuple((_str(ffi.btf_name(btf, e.name_off)), e.val_hi32 << 32 | e.val_lo32) for e in es)
    elif kind == "datasec":
        vs = (uapi.btf_var_secinfo * vlen).from_address(tail)
        items = tuple((v.type, v.offset, v.size) for v in vs)
    sized = kind in ("int", "struct", "union", "enum", "enum64", "datasec", "float")
    return RawType(kind, name, t.size_or_type if sized else 0,
                   0 if sized else t.size_or_type, kflag, items)
