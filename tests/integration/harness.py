"""Real-kernel integration harness: registries, test programs, exporter processes, leak tracking.

Everything here talks to the real thing: `bpfleet programs build` (clang, libbpf), a real
`bpfleet exporter` subprocess that loads into this kernel, its HTTP /metrics and its admin
UNIX socket. Nothing is mocked.

Leak tracking: every exporter we start is recorded with the BPF program and map ids it held
(read from /proc/<pid>/fdinfo just before we stop it). `Tracker.leftovers()` answers "is any
BPF object of ours still alive", telling ours from other processes' by (1) those exact ids,
(2) the names of our BPF programs/maps combined with "not in the snapshot taken before the
session" and "not held by some other live process", and (3) our pin roots.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS_DIR = ROOT / "programs"
ALL_PROGRAMS = sorted(d.name for d in PROGRAMS_DIR.iterdir() if (d / "manifest.toml").is_file())
# Mitigations (a [mitigation] table) attach only where configured: tests/mitigations covers them.
MITIGATIONS = [n for n in ALL_PROGRAMS if "[mitigation]" in (PROGRAMS_DIR / n / "manifest.toml").read_text()]
BUILTINS = [n for n in ALL_PROGRAMS if n not in MITIGATIONS]


def builtin_version(name: str) -> str:
    """The version programs/<name>/manifest.toml declares: what a registry of the built-ins
    holds. Tests name it through this, so that a program's version bump needs no test edits."""
    m = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (PROGRAMS_DIR / name / "manifest.toml").read_text())
    assert m, f"no version in programs/{name}/manifest.toml"
    return m.group(1)


def is_bcc_program(name: str) -> bool:
    return "[bcc]" in (PROGRAMS_DIR / name / "manifest.toml").read_text()


def loads_here(name: str) -> bool:
    """bcc-source programs (docs/manifest.md#bcc-source-programs) load only where bcc finds
    kernel headers; elsewhere the exporter reports them not_applicable."""
    if not is_bcc_program(name):
        return True
    from exporter.bcc import not_applicable_reason
    return not_applicable_reason() is None


# The built-ins this machine can run: what tests wait to see attached.
LOADABLE = [n for n in BUILTINS if loads_here(n)]
_VENV_BPFLEET = ROOT / ".venv" / "bin" / "bpfleet"
BPFLEET = [str(_VENV_BPFLEET)] if _VENV_BPFLEET.exists() else [sys.executable, "-m", "bpfleet.cli"]
BPF_FS = Path("/sys/fs/bpf")
BPF_OBJ_NAME_LEN = 15          # the kernel keeps 15 chars of a program/map name
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
FREE_TIMEOUT = 10.0            # the kernel frees programs/maps from a workqueue after the last ref


def live_skip_reason(*tools: str) -> str | None:
    """Why tests that load real BPF programs can't run here, or None."""
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    for tool in ("bpftool", "clang", *tools):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return None


def deadline_poll(fn, timeout: float, interval: float = 0.02, what: str = "condition"):
    """Call fn() until it returns something truthy; return that. AssertionError on timeout."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.25)


# ------------------------------------------------------------------------------------------
# bpfleet CLI, registries and test programs
# ------------------------------------------------------------------------------------------

def run_bpfleet(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    r = subprocess.run([*BPFLEET, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if check and r.returncode != 0:
        raise AssertionError(f"bpfleet {' '.join(args)} exited {r.returncode}\n"
                             f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    return r


def build(registry: Path, *dirs: Path, expect_ok: bool = True) -> list[dict]:
    """`bpfleet programs build --json --registry R DIR...` -> one result dict per DIR."""
    r = run_bpfleet("programs", "build", "--json", "--registry", str(registry), *map(str, dirs))
    try:
        results = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"programs build printed no JSON (rc {r.returncode})\n"
                             f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
    if expect_ok and r.returncode != 0:
        raise AssertionError(f"programs build failed:\n{json.dumps(results, indent=2)}\n{r.stderr}")
    for res in results:
        if res["status"] != "failed":
            TRACKER.note_artifact(registry / res["program"].replace("@", "/"))
    return results


def write_program(parent: Path, name: str, source: str, manifest: str,
                  header: str | None = None) -> Path:
    """A program directory parent/<name>/ with <name>.bpf.c, manifest.toml (and <name>.h)."""
    d = parent / name
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.bpf.c").write_text(source)
    (d / "manifest.toml").write_text(manifest)
    if header is not None:
        (d / f"{name}.h").write_text(header)
    return d


def copy_program(src_name: str, parent: Path, version: str | None = None,
                 source_edit=None) -> Path:
    """Copy programs/<src_name> to parent/<src_name>, optionally with another version and an
    edited .bpf.c (source_edit: str -> str)."""
    dst = parent / src_name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(PROGRAMS_DIR / src_name, dst)
    if version is not None:
        m = dst / "manifest.toml"
        text, n = re.subn(r'(?m)^version\s*=\s*"[^"]*"', f'version = "{version}"', m.read_text(), count=1)
        assert n == 1, "no version line in the manifest"
        m.write_text(text)
    if source_edit is not None:
        src = dst / f"{src_name}.bpf.c"
        new = source_edit(src.read_text())
        assert new != src.read_text(), "source_edit changed nothing"
        src.write_text(new)
    return dst


# A tiny raw_tp counter: counts syscalls by comm in a hash map. `{extra}` is spliced into the
# program body before the count, so bad variants (verifier rejects) are one line away.
TINY_SOURCE = r"""// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {prefix}_key {{
	char comm[16];
}};

struct {{
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct {prefix}_key);
	__type(value, __u64);
}} {prefix}_counts SEC(".maps");

SEC("{section}")
int {prefix}_prog({args})
{{
	struct {prefix}_key key;
	__u64 one = 1, *count;

	__builtin_memset(&key, 0, sizeof(key));
	bpf_get_current_comm(key.comm, sizeof(key.comm));
{extra}
	count = bpf_map_lookup_elem(&{prefix}_counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&{prefix}_counts, &key, &one, BPF_NOEXIST);
	return 0;
}}

char LICENSE[] SEC("license") = "GPL";
"""

TINY_MANIFEST = """name = "{name}"
version = "{version}"
description = "integration test program {name}"
license = "GPL-2.0"

[requires]
program_types = [{types}]

[[metrics]]
name = "{prefix}_calls_total"
type = "counter"
help = "test counter"
map = "{prefix}_counts"
{labels}
"""


def tiny_program(parent: Path, name: str, version: str = "1.0.0", *, section: str = "raw_tp/sys_enter",
                 program_type: str = "raw_tracepoint", args: str = "void *ctx", extra: str = "",
                 labels: str = "", manifest: str | None = None) -> Path:
    """A small valid (unless `extra`/`section` say otherwise) program directory parent/<name>/.
    Its BPF program is named <name>_prog, its map <name>_counts."""
    src = TINY_SOURCE.format(prefix=name, section=section, args=args, extra=extra)
    man = manifest if manifest is not None else TINY_MANIFEST.format(
        name=name, version=version, prefix=name, types=f'"{program_type}"', labels=labels)
    TRACKER.note_names(f"{name}_prog", f"{name}_counts")
    return write_program(parent, name, src, man)


def publish_raw(registry: Path, name: str, version: str, files: dict[str, bytes]) -> str:
    """Write <registry>/<name>/<version>/ with exactly `files` and an index.json whose digests
    match them: what a build host that hashed already-corrupt output would publish.
    -> the artifact digest (computed with the registry's own digest functions)."""
    from core import registry as reg
    d = registry / name / version
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for fname, data in files.items():
        (d / fname).write_bytes(data)
    digests = reg.file_digests(d)
    digest = reg.digest_of(digests)
    (d / reg.INDEX).write_text(json.dumps({"name": name, "version": version, "digest": digest,
                                           "files": digests}, indent=2))
    reg.write_registry_index(registry)
    return digest


def artifact_dir(registry: Path, name: str, version: str = "1.0.0") -> Path:
    return registry / name / version


def artifact_digest(registry: Path, name: str, version: str) -> str:
    return json.loads((artifact_dir(registry, name, version) / "index.json").read_text())["digest"]


def copy_registry(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------
# Parsing /metrics
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict
    value: float


class Metrics:
    """A parsed scrape. value(name, **labels) sums every sample named `name` whose labels
    include the given ones; a series that is not there is an error (AssertionError naming it),
    so `== 0` cannot pass on a missing series. value_or_zero() is the explicit "absent or 0"
    for a counter that legitimately does not exist yet."""

    def __init__(self, text: str):
        self.text = text
        self.families = list(text_string_to_metric_families(text))
        self.samples = [Sample(s.name, dict(s.labels), s.value) for f in self.families for s in f.samples]

    def find(self, name: str, **labels) -> list[Sample]:
        labels = {k: str(v) for k, v in labels.items()}
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels) -> float:
        found = self.find(name, **labels)
        if not found:
            near = sorted({repr(s.labels) for s in self.samples if s.name == name})[:5]
            raise AssertionError(f"no series {name}{labels or ''} in the scrape"
                                 + (f" (series of that name: {', '.join(near)})" if near
                                    else " (no series of that name at all)"))
        return sum(s.value for s in found)

    def value_or_zero(self, name: str, **labels) -> float:
        """The sum, or 0 when the series is absent: only for a series that may not exist yet."""
        return sum(s.value for s in self.find(name, **labels))

    def has(self, name: str, **labels) -> bool:
        return bool(self.find(name, **labels))

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name and label in s.labels}


# ------------------------------------------------------------------------------------------
# Kernel BPF object bookkeeping
# ------------------------------------------------------------------------------------------

def bpftool_json(*args: str):
    r = subprocess.run(["bpftool", *args, "-j"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"bpftool {' '.join(args)} failed: {r.stderr}")
    return json.loads(r.stdout or "[]")


def fd_bpf_ids(pid: int) -> tuple[set[int], set[int]]:
    """(program ids, map ids) referenced by the fds of process `pid` (progs, links, maps)."""
    progs, maps = set(), set()
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return progs, maps
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                text = f.read()
        except OSError:
            continue
        for m in re.finditer(r"^(prog_id|map_id):\s*(\d+)", text, re.M):
            (progs if m.group(1) == "prog_id" else maps).add(int(m.group(2)))
    return progs, maps


def all_holders() -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """prog id -> pids holding it, map id -> pids holding it, over every live process."""
    ph: dict[int, set[int]] = {}
    mh: dict[int, set[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        progs, maps = fd_bpf_ids(pid)
        for i in progs:
            ph.setdefault(i, set()).add(pid)
        for i in maps:
            mh.setdefault(i, set()).add(pid)
    return ph, mh


@dataclass
class Tracker:
    """Session-wide record of what we put into the kernel."""
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    before_progs: set = field(default_factory=set)
    before_maps: set = field(default_factory=set)
    names: set = field(default_factory=set)             # BPF program and map names, truncated
    prog_ids: set = field(default_factory=set)          # exact ids seen held by our exporters
    map_ids: set = field(default_factory=set)
    pin_roots: set = field(default_factory=set)
    pids: set = field(default_factory=set)
    started: bool = False

    def start(self) -> None:
        if self.started:
            return
        self.before_progs = {p["id"] for p in bpftool_json("prog", "show")}
        self.before_maps = {m["id"] for m in bpftool_json("map", "show")}
        self.started = True

    @property
    def pin_prefix(self) -> str:
        return f"bpfleet-test-{self.token}-"

    def new_pin_root(self) -> str:
        root = str(BPF_FS / f"{self.pin_prefix}{secrets.token_hex(3)}")
        self.pin_roots.add(root)
        return root

    def note_names(self, *names: str) -> None:
        for n in names:
            self.names.add(n[:BPF_OBJ_NAME_LEN])

    def note_artifact(self, version_dir: Path) -> None:
        """Learn the BPF program and map names of a built object (inspection needs no kernel)."""
        for obj in version_dir.glob("*.bpf.o"):
            try:
                from exporter.libbpf import BpfObject
                with BpfObject(str(obj)) as o:
                    self.note_names(*(p.name for p in o.programs()), *o.maps())
            except Exception:
                pass

    def note_exporter(self, pid: int) -> None:
        self.pids.add(pid)
        progs, maps = fd_bpf_ids(pid)
        self.prog_ids |= progs
        self.map_ids |= maps

    def ours_alive(self, prog_ids=None, map_ids=None) -> tuple[set, set]:
        """Which of these exact ids (default: all recorded) still exist in the kernel?"""
        prog_ids = self.prog_ids if prog_ids is None else prog_ids
        map_ids = self.map_ids if map_ids is None else map_ids
        live_p = {p["id"] for p in bpftool_json("prog", "show")}
        live_m = {m["id"] for m in bpftool_json("map", "show")}
        return prog_ids & live_p, map_ids & live_m

    def leftovers(self) -> dict:
        """Everything of ours still in the kernel or on bpffs. Empty dict = clean."""
        out = {}
        progs, maps = self.ours_alive()
        if progs:
            out["programs held by our exporters"] = sorted(progs)
        if maps:
            out["maps held by our exporters"] = sorted(maps)
        pins = sorted(str(p) for p in BPF_FS.glob(f"{self.pin_prefix}*"))
        if pins:
            out["pin roots"] = pins
        # By name: new since the session began, named like ours, held by no live process other
        # than our own (a concurrent benchmark may well run a `sys_enter` of its own).
        live_ours = {pid for pid in self.pids if os.path.exists(f"/proc/{pid}")}
        cand_p = [p for p in bpftool_json("prog", "show")
                  if p["id"] not in self.before_progs and p.get("name", "") in self.names]
        cand_m = [m for m in bpftool_json("map", "show")
                  if m["id"] not in self.before_maps and m.get("name", "") in self.names]
        if cand_p or cand_m:
            ph, mh = all_holders()
            foreign_pins = self._foreign_pinned_ids()
            lp = [f"{p['id']}:{p['name']}" for p in cand_p
                  if not (ph.get(p["id"], set()) - live_ours) and p["id"] not in foreign_pins["prog"]]
            lm = [f"{m['id']}:{m['name']}" for m in cand_m
                  if not (mh.get(m["id"], set()) - live_ours) and m["id"] not in foreign_pins["map"]]
            if lp:
                out["unowned programs named like ours"] = lp
            if lm:
                out["unowned maps named like ours"] = lm
        return out

    def _foreign_pinned_ids(self) -> dict[str, set[int]]:
        """Ids kept alive by pins outside our pin roots (another bpfleet's, say): not ours."""
        out = {"prog": set(), "map": set()}

        def foreign(paths) -> bool:
            return bool(paths) and not any(str(p).startswith(str(BPF_FS / self.pin_prefix)) for p in paths)

        for link in bpftool_json("link", "show", "-f"):
            if foreign(link.get("pinned", [])):
                out["prog"].add(link.get("prog_id"))
        for m in bpftool_json("map", "show", "-f"):
            if foreign(m.get("pinned", [])):
                out["map"].add(m["id"])
        for p in bpftool_json("prog", "show", "-f"):
            if foreign(p.get("pinned", [])):
                out["prog"].add(p["id"])
        return out

    def wait_clean(self, timeout: float = FREE_TIMEOUT) -> dict:
        end = time.monotonic() + timeout
        while True:
            left = self.leftovers()
            if not left or time.monotonic() > end:
                return left
            time.sleep(0.1)


TRACKER = Tracker()
REPORT: list[str] = []      # lines for the end-of-run summary (conftest prints them)


# ------------------------------------------------------------------------------------------
# The exporter process
# ------------------------------------------------------------------------------------------

def _admin_client():
    """The admin-socket client the host modules use (playbooks/module_utils/), the same file."""
    spec = importlib.util.spec_from_file_location(
        "bpfleet_admin", ROOT / "playbooks" / "module_utils" / "bpfleet_admin.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


ADMIN = _admin_client()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def config_text(listen: str, pin_root: str, admin_socket: str, programs: dict, extra: str = "") -> str:
    """programs: name -> {"version": ..., "enabled": ..., "knobs": {...}} (any subset)."""
    lines = [f"listen = {toml_value(listen)}", f"pin_root = {toml_value(pin_root)}",
             f"admin_socket = {toml_value(admin_socket)}"]
    if extra:
        lines.append(extra)
    for name, spec in programs.items():
        lines.append(f"\n[programs.{name}]")
        for k, v in (spec or {}).items():
            lines.append(f"{k} = {toml_value(v)}")
    return "\n".join(lines) + "\n"


class ExporterFailed(AssertionError):
    pass


class Exporter:
    """One `bpfleet exporter` subprocess with its own config, pin root, admin socket and port."""

    def __init__(self, workdir: Path, registry: Path, programs: dict, extra_args=(), extra_config: str = "",
                 pin_root: str | None = None, env: dict | None = None):
        self.workdir = Path(workdir)
        self.env = dict(env or {})     # on top of ours (e.g. a test fault plugin: tests/faults/)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.registry = Path(registry)
        self.programs = dict(programs)
        self.pin_root = pin_root or TRACKER.new_pin_root()
        # UNIX socket paths are limited to 108 bytes; tmp_path can be long.
        self.sockdir = Path(f"/tmp/bpfleet-it-{TRACKER.token}-{secrets.token_hex(3)}")
        self.admin_socket = str(self.sockdir / "admin.sock")
        self.port = free_port()
        self.listen = f"127.0.0.1:{self.port}"
        self.config_path = self.workdir / "exporter.toml"
        self.extra_config = extra_config
        self.write_config(self.programs)
        self.extra_args = list(extra_args)
        self.stderr_path = self.workdir / "exporter.stderr"
        self.proc: subprocess.Popen | None = None
        self.ready: dict | None = None
        self.stopped = False

    # ---- config ----
    def write_config(self, programs: dict, extra: str | None = None) -> None:
        self.config_path.write_text(config_text(self.listen, self.pin_root, self.admin_socket, programs,
                                                self.extra_config if extra is None else extra))

    def command(self, *more: str) -> list[str]:
        return [*BPFLEET, "exporter", "--config", str(self.config_path), "--registry", str(self.registry),
                *self.extra_args, *more]

    # ---- lifecycle ----
    def start(self, timeout: float = READY_TIMEOUT) -> "Exporter":
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=self._stderr,
                                     cwd=ROOT, env=env)
        TRACKER.pids.add(self.proc.pid)
        self.ready = self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> dict:
        end = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stdout.fileno()
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break  # EOF: it exited
                buf += chunk
                for line in buf.split(b"\n")[:-1]:
                    try:
                        msg = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(msg, dict) and msg.get("event") == "ready":
                        return msg
            elif self.proc.poll() is not None:
                break
        try:
            rc = self.proc.wait(1)   # it closed stdout: probably exiting
        except subprocess.TimeoutExpired:
            rc = None
        self.kill()           # and remove whatever it pinned
        self.stopped = True   # reported here, not again at teardown
        why = f"exited with code {rc} before it was ready" if rc is not None else f"not ready within {timeout}s"
        raise ExporterFailed(f"exporter {why}\n"
                             f"stdout: {buf.decode(errors='replace')}\n{self.stderr_tail()}")

    def stderr_tail(self, n: int = 60) -> str:
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no stderr)"
        return "exporter stderr (tail):\n" + "\n".join(lines[-n:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM; assert exit code 0, pin root and admin socket gone, and every BPF program
        and map it held freed by the kernel."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        held_p, held_m = fd_bpf_ids(self.proc.pid) if self.alive() else (set(), set())
        TRACKER.prog_ids |= held_p
        TRACKER.map_ids |= held_m
        problems = []
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                rc = None
                problems.append(f"did not exit within {STOP_TIMEOUT}s of SIGTERM")
        else:
            rc = self.proc.returncode
            problems.append(f"had already exited (code {rc}) before we stopped it")
        self._close_files()
        if rc != 0:
            problems.append(f"exit code {rc}, expected 0")
        if os.path.exists(self.pin_root):
            problems.append(f"pin root {self.pin_root} still exists: {sorted(os.listdir(self.pin_root))}")
            shutil.rmtree(self.pin_root, ignore_errors=True)
        if os.path.exists(self.admin_socket):
            problems.append(f"admin socket {self.admin_socket} still exists")
        shutil.rmtree(self.sockdir, ignore_errors=True)
        try:
            deadline_poll(lambda: not any(TRACKER.ours_alive(held_p, held_m)), FREE_TIMEOUT,
                          what="the exporter's BPF programs and maps to be freed")
        except AssertionError:
            p, m = TRACKER.ours_alive(held_p, held_m)
            problems.append(f"BPF objects still alive after exit: programs {sorted(p)}, maps {sorted(m)}")
        if problems:
            raise ExporterFailed("exporter shutdown: " + "; ".join(problems) + "\n" + self.stderr_tail())

    def kill(self) -> None:
        """Last resort (a test already failed): SIGKILL and clean up pins by hand."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_files()
        shutil.rmtree(self.pin_root, ignore_errors=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def _close_files(self) -> None:
        for f in (getattr(self, "_stderr", None), self.proc and self.proc.stdout):
            try:
                f and f.close()
            except OSError:
                pass

    def snapshot_ids(self) -> tuple[set[int], set[int]]:
        """(program ids, map ids) the exporter holds right now; also recorded for leak checks."""
        assert self.alive(), "exporter is not running\n" + self.stderr_tail()
        TRACKER.note_exporter(self.proc.pid)
        return fd_bpf_ids(self.proc.pid)

    def sighup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    # ---- HTTP ----
    def get(self, path: str, timeout: float = 30) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(f"http://{self.listen}{path}", timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read()

    def scrape(self) -> str:
        code, ctype, body = self.get("/metrics")
        assert code == 200, f"/metrics returned {code}: {body[:500]!r}\n{self.stderr_tail()}"
        assert ctype.startswith("text/plain"), ctype
        return body.decode("utf-8")

    def metrics(self) -> Metrics:
        return Metrics(self.scrape())

    # ---- admin socket ----
    def admin(self, method: str, path: str, body=None, timeout: float = 60) -> tuple[int, dict]:
        """-> (HTTP status, JSON reply); `body` a JSON value or raw bytes. OSError (ExporterDown)
        when nothing answers."""
        return ADMIN.call_once(self.admin_socket, method, path, body, timeout)

    def status(self) -> dict:
        code, st = self.admin("GET", "/status")
        assert code == 200, st
        return st

    def program(self, name: str) -> dict | None:
        return next((p for p in self.status()["programs"] if p["name"] == name), None)

    def wait_attached(self, *names: str, timeout: float = 10) -> None:
        def ok():
            st = {p["name"]: p for p in self.status()["programs"]}
            return all(n in st and st[n]["state"] == "attached" for n in names)
        try:
            deadline_poll(ok, timeout, what=f"{names} attached")
        except AssertionError:
            raise AssertionError(f"{json.dumps(self.status(), indent=2)}\n{self.stderr_tail()}")

