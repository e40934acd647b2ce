"""Kernel cost per event of every built-in program, from bpf_stats (run_time_ns / run_cnt).

Run as root from the repo root:

    .venv/bin/python bench/bench_kernel_cost.py                  # everything, 3 rounds
    .venv/bin/python bench/bench_kernel_cost.py --only syscalls --rounds 5 --seconds 3
    .venv/bin/python bench/bench_kernel_cost.py --no-bpftrace --skip oomkill

Builds programs/* and bench/programs/emptyprog into a temp registry and loads them with
exporter.load.loader.load while kernel.bpf_stats_enabled is on (libbpf.enable_stats()).
Each program runs under a workload that triggers it; the per-program run_time_ns and run_cnt
deltas over the workload window give ns per event:

  syscalls    getppid() loop; attached together to sys_enter: an empty raw_tp program (the
              floor: dispatch + the stats' own clock reads), ours (by_process off, then on)
              and bpftrace's `tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }`
  exec        posix_spawn of /bin/true (ring buffer consumed as the exporter does)
  tcp         loopback connect/accept/close (RST close, no TIME_WAIT pile-up)
  biolatency  O_DIRECT 4 KiB random reads and writes on a file under /var/tmp
  runqlat     two processes ping-ponging a byte over pipes, plus forks (sched_wakeup_new)
  oomkill     memcg OOM kills of a child in a private memory cgroup (cgroup v1 or v2)
  variants    (only with --only variants) design experiments for syscalls' by_process
              path, bench/programs/sysvariants, attached together with the floor
  runqlat-variants  (only with --only) runqlat next to bench/programs/runqvariants (start
              timestamps in task local storage instead of a pid hash), same workload

run_time_ns covers the BPF program body only. A `tracepoint:` program (bpftrace) also pays
for filling the trace event record before it runs, which bpf_stats does not count; raw_tp
and tp_btf programs (ours) have no such step. So "ours / bpftrace" here is conservative.

Everything loaded is detached and unpinned on exit, also on Ctrl-C, SIGTERM or an error;
the last line reports whether any program of this run is still loaded.
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes as C
import json
import mmap
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (BENCH_PROGRAMS, BUILTIN_PROGRAMS, Workspace,  # noqa: E402
                           build_into, machine)
from exporter import libbpf  # noqa: E402
from exporter.libbpf import ffi, uapi  # noqa: E402
from exporter.load import loader  # noqa: E402

BPFTRACE_SCRIPT = "tracepoint:raw_syscalls:sys_enter { @[args->id] = count(); }"
GOAL_RATIO = 0.3
FLOOR, BPFTRACE = "floor (empty raw_tp)", "bpftrace count()"
PHASES = ["syscalls", "exec", "tcp", "biolatency", "runqlat", "oomkill"]
EXTRA_PHASES = ["variants", "runqlat-variants"]  # only with --only

_get_fd_by_id = ffi.lib.bpf_prog_get_fd_by_id
_get_fd_by_id.restype, _get_fd_by_id.argtypes = C.c_int, [C.c_uint32]


# ---- kernel program bookkeeping ----

def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when the bench process dies, however it dies."""
    C.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

def prog_id(fd: int) -> int:
    info = uapi.bpf_prog_info()
    n = C.c_uint32(C.sizeof(info))
    ffi.check(ffi.obj_get_info(fd, C.byref(info), C.byref(n)), "bpf_obj_get_info_by_fd")
    return info.id


def bpftool_progs() -> list[dict]:
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


class Meter:
    """Named BPF programs (by fd) whose stats are snapshotted around a workload."""

    def __init__(self):
        self.fds: dict[str, int] = {}

    def add(self, label: str, fd: int) -> None:
        self.fds[label] = fd

    def remove(self, label: str) -> None:
        self.fds.pop(label, None)

    def snapshot(self) -> dict[str, libbpf.KernelStats]:
        return {label: libbpf.prog_stats(fd) for label, fd in self.fds.items()}

    @staticmethod
    def delta(before, after) -> dict[str, tuple[int, int, int]]:
        """-> label: (run_time_ns, run_cnt, recursion_misses) over the window."""
        return {k: (after[k].run_time_ns - before[k].run_time_ns, after[k].run_cnt - before[k].run_cnt,
                    after[k].recursion_misses - before[k].recursion_misses)
                for k in after if k in before}


class Session:
    """Loads programs and bpftrace, remembers everything it started, undoes it all on exit."""

    def __init__(self, ws: Workspace):
        self.ws, self.stack = ws, contextlib.ExitStack()
        self.our_ids: set[int] = set()
        self.bpftrace: subprocess.Popen | None = None
        self.bpftrace_fd = -1
        self.bpftrace_ids: set[int] = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stack.close()  # programs closed (detached, unpinned) in reverse order
        self.stop_bpftrace()

    def load(self, artifact, knobs: dict, meter: Meter, label):
        """Load and attach; each BPF program is metered as label(program name)."""
        prog, _ = loader.load(loader.read(artifact), knobs, self.ws.pin_root, "bench_kernel_cost")
        self.stack.callback(prog.close)  # close() is idempotent: early closes are fine
        for name, fd in prog.obj.program_fds().items():
            self.our_ids.add(prog_id(fd))
            meter.add(label(name), fd)
        return prog

    def start_bpftrace(self, meter: Meter, label: str, timeout: float = 30.0) -> None:
        before = {p["id"] for p in bpftool_progs()}
        # Own session: a Ctrl-C in the terminal reaches us, and we stop bpftrace ourselves.
        # If we die without cleaning up (kill -9), the kernel sends it SIGTERM.
        self.bpftrace = subprocess.Popen(["bpftrace", "-e", BPFTRACE_SCRIPT], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bpftrace.poll() is not None:
                raise RuntimeError(f"bpftrace exited with {self.bpftrace.returncode}")
            new = [p for p in bpftool_progs() if p["id"] not in before
                   and p.get("type") == "tracepoint" and p.get("name") == "sys_enter"]
            if new:
                pid = new[0]["id"]
                self.bpftrace_ids.add(pid)
                fd = _get_fd_by_id(pid)
                if fd < 0:
                    raise RuntimeError(f"bpf_prog_get_fd_by_id({pid}) failed")
                self.bpftrace_fd = fd  # holds the program until stop_bpftrace()
                meter.add(label, fd)
                time.sleep(0.5)  # let it finish attaching
                return
            time.sleep(0.1)
        raise RuntimeError("bpftrace's program did not show up in `bpftool prog show`")

    def stop_bpftrace(self) -> None:
        if self.bpftrace_fd >= 0:
            os.close(self.bpftrace_fd)
            self.bpftrace_fd = -1
        p, self.bpftrace = self.bpftrace, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def leftovers(self, wait: float = 10.0) -> list[int]:
        """Our programs still loaded. The kernel frees a detached program after an RCU grace
        period, so give it a few seconds before calling it a leak."""
        deadline = time.monotonic() + wait
        while True:
            left = sorted((self.our_ids | self.bpftrace_ids) & {p["id"] for p in bpftool_progs()})
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


# ---- workloads: each runs about `seconds` and returns how many operations it did ----

def work_getppid(seconds: float) -> int:
    n, end, getppid = 0, time.perf_counter() + seconds, os.getppid
    while time.perf_counter() < end:
        for _ in range(10_000):
            getppid()
        n += 10_000
    return n


def work_exec(seconds: float, prog=None) -> int:
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        pid = os.posix_spawn("/bin/true", ["/bin/true"], {})
        os.waitpid(pid, 0)
        n += 1
        if prog is not None and n % 50 == 0:
            prog.consume_events(1 << 20)
    if prog is not None:
        prog.consume_events(1 << 20)
    return n


def work_tcp(seconds: float) -> int:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    addr, n, end = srv.getsockname(), 0, time.perf_counter() + seconds
    linger = struct.pack("ii", 1, 0)
    try:
        while time.perf_counter() < end:
            c = socket.create_connection(addr)
            s, _ = srv.accept()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)  # RST: no TIME_WAIT
            c.close()
            s.close()
            n += 1
    finally:
        srv.close()
    return n


def work_bio(seconds: float, size: int = 64 << 20, block: int = 4096) -> int:
    d = tempfile.mkdtemp(prefix="bpfleet-bench-bio-", dir="/var/tmp")
    path = os.path.join(d, "data")
    try:
        with open(path, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(path, os.O_RDWR | os.O_DIRECT)
        buf = mmap.mmap(-1, block)  # page aligned, as O_DIRECT wants
        buf.write(os.urandom(block))
        n, blocks, end = 0, size // block, time.perf_counter() + seconds
        rnd = int.from_bytes(os.urandom(4), "little")
        try:
            while time.perf_counter() < end:
                rnd = (rnd * 1103515245 + 12345) & 0x7FFFFFFF
                off = (rnd % blocks) * block
                if n % 4 == 3:
                    os.pwritev(fd, [buf], off)
                else:
                    os.preadv(fd, [buf], off)
                n += 1
        finally:
            os.close(fd)
            buf.close()
        return n
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(d)


def work_sched(seconds: float, forks: int = 300) -> int:
    """Ping-pong over two pipes between two processes: every round trip is two wakeups and
    two context switches. Then `forks` short-lived children for sched_wakeup_new."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(a_w)
            os.close(b_r)
            while os.read(a_r, 1):
                os.write(b_w, b"x")
        finally:
            os._exit(0)
    os.close(a_r)
    os.close(b_w)
    n, end = 0, time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            for _ in range(100):
                os.write(a_w, b"x")
                os.read(b_r, 1)
            n += 100
    finally:
        os.close(a_w)  # child reads EOF and exits
        os.close(b_r)
        os.waitpid(child, 0)
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return n


def _memcg() -> tuple[str, str] | None:
    """(parent directory, limit file) of a usable memory cgroup hierarchy, v1 or v2."""
    if os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        return "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(base, "cgroup.subtree_control")) as f:
                if "memory" in f.read().split():
                    return base, "memory.max"
        except OSError:
            pass
    return None


def _join_cgroup(d: str) -> None:
    with open(os.path.join(d, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


def work_oom(kills: int) -> int:
    """Children in a private memory cgroup capped at 64 MiB each allocate 512 MiB and get
    OOM-killed. Nothing outside that cgroup is at risk."""
    cg = _memcg()
    if cg is None:
        raise RuntimeError("no memory cgroup controller found")
    base, limit = cg
    d = os.path.join(base, f"bpfleet-bench-oom-{os.getpid()}")
    os.mkdir(d)
    n = 0
    try:
        with open(os.path.join(d, limit), "w") as f:
            f.write(str(64 << 20))
        with contextlib.suppress(OSError):  # v1: no swap to fall back on
            with open(os.path.join(d, "memory.memsw.limit_in_bytes"), "w") as f:
                f.write(str(64 << 20))
        code = "b = b'x' * (512 << 20)"
        for _ in range(kills):
            p = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL,
                                 preexec_fn=lambda: _join_cgroup(d))
            rc = p.wait(timeout=60)
            n += rc == -signal.SIGKILL
    finally:
        for _ in range(50):  # the killed task may take a moment to leave the cgroup
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.1)
    return n


# ---- the run ----

class Results:
    def __init__(self):
        self.rows: list[tuple[str, int, str, int, int, int]] = []  # phase, round, label, ns, cnt, misses

    def add(self, phase: str, rnd: int, deltas: dict) -> None:
        for label, (ns, cnt, misses) in deltas.items():
            self.rows.append((phase, rnd, label, ns, cnt, misses))

    def per_event(self, phase: str, label: str) -> list[float]:
        return [ns / cnt for p, _r, lb, ns, cnt, _m in self.rows if p == phase and lb == label and cnt]

    def by_round(self, phase: str) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for p, r, lb, ns, cnt, _m in self.rows:
            if p == phase and cnt:
                out.setdefault(r, {})[lb] = ns / cnt
        return out


def fmt_n(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else str(n)


def print_window(phase: str, rnd: int, what: str, ops: int, seconds: float, deltas: dict,
                 floor: str | None = None) -> None:
    print(f"  round {rnd} {what}: {fmt_n(ops)} ops in {seconds:.1f} s")
    base = deltas[floor][0] / deltas[floor][1] if floor and deltas.get(floor, (0, 0))[1] else None
    for label, (ns, cnt, misses) in deltas.items():
        if not cnt:
            print(f"    {label:<34} {'0':>9} events   (not triggered)")
            continue
        per = ns / cnt
        above = f"  {per - base:7.1f} above floor" if base is not None and label != floor else ""
        miss = f"  recursion misses {misses}" if misses else ""
        print(f"    {label:<34} {fmt_n(cnt):>9} events {per:8.1f} ns/event{above}{miss}")


def run_syscalls(sess, arts, args, results) -> None:
    meter = Meter()
    sess.load(arts["emptyprog"], {}, meter, lambda _n: FLOOR)
    if args.bpftrace:
        sess.start_bpftrace(meter, BPFTRACE)
    print("syscalls: raw_syscalls:sys_enter, getppid() loop; floor, ours and bpftrace attached together")
    for rnd in range(1, args.rounds + 1):
        for by_process in (False, True):
            label = f"syscalls by_process={'on' if by_process else 'off'}"
            prog = sess.load(arts["syscalls"], {"by_process": by_process}, meter, lambda _n: label)
            try:
                work_getppid(0.2)  # warm-up: by_process creates its hash entries here
                before = meter.snapshot()
                t0 = time.perf_counter()
                ops = work_getppid(args.seconds)
                deltas = Meter.delta(before, meter.snapshot())
                print_window("syscalls", rnd, label, ops, time.perf_counter() - t0, deltas, FLOOR)
                results.add(f"syscalls/{'on' if by_process else 'off'}", rnd, deltas)
            finally:
                meter.remove(label)
                prog.close()


def run_variants(sess, arts, args, results) -> None:
    meter = Meter()
    sess.load(arts["emptyprog"], {}, meter, lambda _n: FLOOR)
    sess.load(arts["sysvariants"], {}, meter, lambda n: f"variant {n}")
    print("variants: raw_syscalls:sys_enter, getppid() loop; floor and every variant attached together")
    work_getppid(0.2)
    for rnd in range(1, args.rounds + 1):
        before = meter.snapshot()
        t0 = time.perf_counter()
        ops = work_getppid(args.seconds)
        deltas = Meter.delta(before, meter.snapshot())
        print_window("variants", rnd, "variants", ops, time.perf_counter() - t0, deltas, FLOOR)
        results.add("variants", rnd, deltas)


def run_runq_variants(sess, arts, args, results) -> None:
    meter = Meter()
    sess.load(arts["runqlat"], {}, meter, lambda n: f"runqlat/{n}")
    sess.load(arts["runqvariants"], {}, meter, lambda n: f"task storage/{n}")
    print("runqlat-variants: runqlat and the task-storage variant attached together, pipe ping-pong")
    for rnd in range(1, args.rounds + 1):
        before = meter.snapshot()
        t0 = time.perf_counter()
        ops = work_sched(args.seconds)
        deltas = Meter.delta(before, meter.snapshot())
        print_window("runqlat-variants", rnd, "runqlat-variants", ops, time.perf_counter() - t0, deltas)
        results.add("runqlat-variants", rnd, deltas)


def run_single(sess, arts, args, results, phase: str, workload, desc: str, knobs=None) -> None:
    meter = Meter()
    prog = sess.load(arts[phase], knobs or {}, meter, lambda n: f"{phase}/{n}")
    try:
        print(f"{phase}: {desc}")
        for rnd in range(1, args.rounds + 1):
            before = meter.snapshot()
            t0 = time.perf_counter()
            ops = workload(prog)
            deltas = Meter.delta(before, meter.snapshot())
            print_window(phase, rnd, phase, ops, time.perf_counter() - t0, deltas)
            results.add(phase, rnd, deltas)
    finally:
        prog.close()


def summary(results: Results, args) -> None:
    print("\nsummary: median ns/event over rounds (min-max)")
    labels = []
    for p, _r, lb, *_ in results.rows:
        if (p, lb) not in labels:
            labels.append((p, lb))
    for p, lb in labels:
        xs = results.per_event(p, lb)
        if xs:
            print(f"  {p:<14} {lb:<38} {statistics.median(xs):7.1f}  ({min(xs):.1f}-{max(xs):.1f})")
        else:
            print(f"  {p:<14} {lb:<38}       -  (not triggered)")
    floor_l, bt_l = FLOOR, BPFTRACE
    rounds = results.by_round("variants")
    for lb in sorted({lb for r in rounds.values() for lb in r if lb != floor_l}):
        above = [r[lb] - r[floor_l] for r in rounds.values() if lb in r and floor_l in r]
        if above:
            print(f"  {lb}: {statistics.median(above):.1f} ns above the floor")
    for knob in ("off", "on"):
        rounds = results.by_round(f"syscalls/{knob}")
        ours_l = f"syscalls by_process={knob}"
        ours = [r[ours_l] - r[floor_l] for r in rounds.values() if ours_l in r and floor_l in r]
        if not ours:
            continue
        line = f"  syscalls by_process={knob}: {statistics.median(ours):.1f} ns above the floor"
        ratios = [(r[ours_l] - r[floor_l]) / (r[bt_l] - r[floor_l]) for r in rounds.values()
                  if bt_l in r and r[bt_l] > r[floor_l]]
        if ratios:
            bt = [r[bt_l] - r[floor_l] for r in rounds.values() if bt_l in r]
            med = statistics.median(ratios)
            line += (f", bpftrace {statistics.median(bt):.1f} above; ours/bpftrace = {med:.2f}"
                     f" ({min(ratios):.2f}-{max(ratios):.2f}) -> goal <= {GOAL_RATIO}: "
                     f"{'met' if med <= GOAL_RATIO else 'MISSED'}")
        print(line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="workload length per window")
    ap.add_argument("--only", action="append", choices=PHASES + EXTRA_PHASES,
                    help="run only these phases")
    ap.add_argument("--skip", action="append", choices=PHASES, default=[])
    ap.add_argument("--no-bpftrace", dest="bpftrace", action="store_false")
    ap.add_argument("--oom-kills", type=int, default=3, help="OOM kills per round for oomkill")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (loads BPF programs, enables bpf_stats)")
    phases = [p for p in (args.only or PHASES) if p not in args.skip]

    # SIGTERM/SIGHUP unwind like Ctrl-C, so every finally below runs.
    def _bye(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _bye)
    signal.signal(signal.SIGHUP, _bye)

    print(f"# bench_kernel_cost: {machine()}")
    results = Results()
    stats_fd = libbpf.enable_stats()  # stats stay on while this fd is open
    sess = None
    try:
        with Workspace() as ws, Session(ws) as sess:
            arts = {"emptyprog": build_into(ws.registry, BENCH_PROGRAMS / "emptyprog")}
            extra = {"variants": ["emptyprog", "sysvariants"], "runqlat-variants": ["runqlat", "runqvariants"]}
            for p in phases:
                for name in extra.get(p, [p]):
                    src = BUILTIN_PROGRAMS / name if (BUILTIN_PROGRAMS / name).is_dir() else BENCH_PROGRAMS / name
                    arts[name] = arts.get(name) or build_into(ws.registry, src)
            s = args.seconds
            for p in phases:
                try:
                    if p == "syscalls":
                        run_syscalls(sess, arts, args, results)
                        sess.stop_bpftrace()
                    elif p == "variants":
                        run_variants(sess, arts, args, results)
                    elif p == "runqlat-variants":
                        run_runq_variants(sess, arts, args, results)
                    elif p == "exec":
                        run_single(sess, arts, args, results, p, lambda prog: work_exec(s, prog),
                                   "posix_spawn(/bin/true) + wait, ring buffer consumed every 50")
                    elif p == "tcp":
                        run_single(sess, arts, args, results, p, lambda prog: work_tcp(s),
                                   "loopback connect + accept + RST close")
                    elif p == "biolatency":
                        run_single(sess, arts, args, results, p, lambda prog: work_bio(s),
                                   "O_DIRECT 4 KiB random I/O (3 reads : 1 write) on /var/tmp")
                    elif p == "runqlat":
                        run_single(sess, arts, args, results, p, lambda prog: work_sched(s),
                                   "pipe ping-pong between two processes, then 300 forks")
                    elif p == "oomkill":
                        run_single(sess, arts, args, results, p, lambda prog: work_oom(args.oom_kills),
                                   f"{args.oom_kills} memcg OOM kills of a child capped at 64 MiB")
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    print(f"{p}: skipped: {e}")
            summary(results, args)
    finally:
        os.close(stats_fd)
        if sess is not None:
            left = sess.leftovers()
            print("cleanup: " + (f"STILL LOADED program ids {left}" if left else
                                 "ok, no program of this run is loaded, bpftrace stopped"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
