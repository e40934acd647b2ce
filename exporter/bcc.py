"""The bcc boundary: the only code in bpfleet that imports bcc (Debian's python3-bpfcc).

A bcc-source program (docs/manifest.md#bcc-source-programs) is C source that bcc compiles at
load time against this host's kernel headers. `BccObject` compiles it, loads and attaches its
functions as the manifest's [bcc] attach list says, and offers the same surface as
exporter.libbpf.BpfObject that LoadedProgram uses: maps() with BTF-shaped key/value records
made from bcc's table Key/Leaf ctypes (core/ctypes_layout.py), map fds, program fds. Maps
are then read and exported by exactly the code that reads CO-RE maps."""
from __future__ import annotations

import ctypes
import importlib.util
import os

from core.ctypes_layout import Records
from core.manifest import BccSpec
from exporter import libbpf
from exporter.libbpf import MapInfo, ProgramInfo

HEADER_DIRS = ("/lib/modules/{release}/build", "/lib/modules/{release}/source")
KHEADERS = "/sys/kernel/kheaders.tar.xz"     # CONFIG_IKHEADERS: bcc unpacks it itself
PROG_TYPES = {"kprobe": "KPROBE", "kretprobe": "KPROBE", "tracepoint": "TRACEPOINT",
              "raw_tracepoint": "RAW_TRACEPOINT"}
LIBBPF_TYPES = {"KPROBE": "kprobe", "TRACEPOINT": "tracepoint", "RAW_TRACEPOINT": "raw_tracepoint"}
# attach kind -> (bcc attach method, its target keyword, bcc detach method)
ATTACH = {"kprobe": ("attach_kprobe", "event", "detach_kprobe"),
          "kretprobe": ("attach_kretprobe", "event", "detach_kretprobe"),
          "tracepoint": ("attach_tracepoint", "tp", "detach_tracepoint"),
          "raw_tracepoint": ("attach_raw_tracepoint", "tp", "detach_raw_tracepoint")}


def not_applicable_reason(release: str | None = None) -> str | None:
    """Why bcc-source programs cannot run here, or None when they can."""
    # Looked up, not imported: importing bcc maps libbcc, LLVM and clang (~60 MB) into the
    # exporter, which only a bcc-source program that will really compile may cost.
    if importlib.util.find_spec("bcc") is None:
        return "bcc is not installed (python3-bpfcc)"
    release = release or os.uname().release
    if os.environ.get("BCC_KERNEL_SOURCE") and os.path.isdir(os.environ["BCC_KERNEL_SOURCE"]):
        return None
    dirs = [d.format(release=release) for d in HEADER_DIRS]
    if any(os.path.isdir(d) for d in dirs) or os.path.exists(KHEADERS):
        return None
    return (f"no kernel headers for {release} ({dirs[0]} missing, no {KHEADERS}): bcc compiles "
            f"the program against them at load time (apt-get install linux-headers-{release})")


class BccObject:
    """A compiled bcc module. attach=False: load every function but attach none (verify)."""

    def __init__(self, path: str, spec: BccSpec, attach: bool = True):
        from bcc import BPF
        self.path, self.spec = path, spec
        self._links_up = False
        with open(path, "rb") as f:
            text = f.read()
        self._bpf = BPF(text=text, cflags=list(spec.cflags))
        try:
            self._fds = {}
            for a in spec.attach:
                fn = self._bpf.load_func(a.fn.encode(), getattr(BPF, PROG_TYPES[a.kind]))
                self._fds[a.fn] = fn.fd
            if attach:
                for a in spec.attach:
                    self._attach(a)
                self._links_up = True
        except BaseException:
            self.close()
            raise
        self._maps = self._read_maps()

    def _attach(self, a) -> None:
        method, keyword, _ = ATTACH[a.kind]
        getattr(self._bpf, method)(**{keyword: a.target.encode(), "fn_name": a.fn.encode()})

    def _read_maps(self):
        from bcc.libbcc import lib
        # bcc's Python bindings leave these two undeclared (their results would be ints)
        lib.bpf_num_tables.restype, lib.bpf_num_tables.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
        lib.bpf_table_name.restype = ctypes.c_char_p
        lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        recs, out = Records(), {}
        for i in range(lib.bpf_num_tables(self._bpf.module)):
            name = lib.bpf_table_name(self._bpf.module, i).decode()
            t = self._bpf.get_table(name)
            out[name] = (MapInfo(name, libbpf.map_type_name(t.ttype), ctypes.sizeof(t.Key),
                                 ctypes.sizeof(t.Leaf),
                                 int(t.max_entries), recs.add(t.Key), recs.add(t.Leaf)), t.map_fd)
        self._records = recs.records
        return out

    # ---- the BpfObject surface LoadedProgram and the loader use ----
    def maps(self) -> dict[str, MapInfo]:
        return {n: info for n, (info, _fd) in self._maps.items()}

    def btf_records(self) -> list:
        return self._records

    def programs(self) -> list[ProgramInfo]:
        return [ProgramInfo(a.fn, f"{a.kind}/{a.target}", LIBBPF_TYPES[PROG_TYPES[a.kind]])
                for a in self.spec.attach]

    def section_map(self, section: str) -> None:
        return None

    def map_fd(self, name: str) -> int:
        return self._maps[name][1]

    def program_fds(self) -> dict[str, int]:
        return dict(self._fds)

    @property
    def attached(self) -> bool:
        return self._links_up

    def detach_all(self) -> None:
        if self._links_up:
            for a in self.spec.attach:
                try:
                    getattr(self._bpf, ATTACH[a.kind][2])(a.target.encode())
                except Exception:
                    pass   # cleanup() removes what is left
            self._links_up = False

    def pin(self, directory: str) -> None:
        """bcc keeps no pins; the directory marks the program for stale-pin cleanup only."""
        os.makedirs(directory, exist_ok=True)

    def close(self) -> None:
        if self._bpf is not None:
            self.detach_all()
            self._bpf.cleanup()
            self._bpf = None
