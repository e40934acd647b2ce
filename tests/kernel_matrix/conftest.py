"""The kernel matrix's runs: every built-in program in one exporter on this machine's kernel,
and in a lab VM on each of the lab image's kernels (Debian bookworm's 6.1 and bookworm-
backports' 6.12, one VM boot each; the image has both kernels' headers and python3-bpfcc, so
bcc-source programs compile there). Each run: start the exporter, scrape,
run workload.py, scrape until every program's metric grew (or a deadline), read /status.
Then, per kernel, one extra exporter run per matrix.variant_passes (every variant that can load
there, forced; the programs with variants only, so no bcc compile): their cost by variant.
Each kernel's run is its own fixture: the host's tests never wait on a VM, and pass or fail on
their own when no VM boots. docs/kernel-matrix.md is rewritten (matrix.py) at the end of the
session only when every kernel ran and no kernel-matrix test failed; otherwise the committed
page stays, and the "bpfleet kernel matrix" summary says why."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from harness import BUILTINS, PROGRAMS_DIR, ROOT, build
import matrix

HERE = Path(__file__).resolve().parent
DOC = ROOT / "docs" / "kernel-matrix.md"
REPORT: list[str] = []
RUNS: dict[str, matrix.KernelRun] = {}   # matrix.KERNELS name -> its run, as each completes
FAILED: list[str] = []                   # kernel-matrix tests that failed or errored
# This suite's own lab (env wins): apart from the other test labs and from a developer's.
LAB = {"BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-kmx", "BPFLEET_LAB_PREFIX": "bpflkmx",
       "BPFLEET_LAB_SUBNET": "10.213.230.0/24", "BPFLEET_LAB_PORT_BASE": "43100"}
VM_MEMORY_MB = 1024          # clang inside bcc needs more than the lab's default 512
EXPORTER_READY_S = 900       # bcc compiles two programs under TCG
COUNT_DEADLINE_S = 180
VARIANT_READY_S = 300        # a forced-variant run: libbpf programs only
# Kernels whose headers the image's bcc (bookworm's python3-bpfcc 0.26) cannot compile every
# program against, and why (measured: tcpv4connect includes <net/sock.h>, disksnoop does not).
BCC_TOO_OLD = {
    "backports": "bookworm's bcc 0.26 (python3-bpfcc) cannot compile it against the 6.12 headers: "
                 "its bundled uapi linux/bpf.h lacks struct bpf_wq, bpf_rb_root, bpf_rb_node and "
                 "bpf_refcount, which 6.12's include/linux/bpf.h (via <net/sock.h>) takes the size of",
}


def pytest_configure(config):
    config.addinivalue_line("markers", "vm: boots QEMU VMs of the lab (minutes on a fresh machine)")


def pytest_runtest_logreport(report):
    # Called for this directory's tests only (a conftest's hooks follow its items).
    if report.failed:
        FAILED.append(report.nodeid.split("::", 1)[-1])


def pytest_sessionfinish(session):
    """Rewrite the page from a complete, passing matrix only (runs before the summary)."""
    if not RUNS:
        return        # no kernel ran (deselected, or not root): nothing to say
    REPORT.append(matrix.write_page(DOC, RUNS, FAILED))


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("bpfleet kernel matrix")
        for line in REPORT:
            terminalreporter.write_line(line)


def is_bcc(name: str) -> bool:
    return "[bcc]" in (PROGRAMS_DIR / name / "manifest.toml").read_text()


def settled(status: dict) -> bool:
    return bool(status.get("programs")) and all(p["state"] not in ("stopped",) for p in status["programs"])


def grown(status: dict, before: str, after: str) -> bool:
    """Has every attached program's metric grown by what the workload did?"""
    return all(r.counted >= r.wanted for r in matrix.rows(status, before, after) if r.state == "attached")


def measure(get, run_workload) -> tuple[dict, str, str, dict]:
    """(status, metrics before, metrics after, workload summary) of one exporter."""
    status = json.loads(get("/status"))
    before = get("/metrics")
    work = run_workload()
    end = time.monotonic() + COUNT_DEADLINE_S
    while True:      # counters are read from maps on scrape; wait for every program's growth
        after = get("/metrics")
        if grown(status, before, after) or time.monotonic() > end:
            break
        time.sleep(1)
    return json.loads(get("/status")), before, after, work


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Path:
    reg = tmp_path_factory.mktemp("matrix-registry")
    build(reg, *(PROGRAMS_DIR / n for n in BUILTINS))
    return reg


@pytest.fixture(scope="session")
def host_run(registry, tmp_path_factory):
    from harness import Exporter
    if os.geteuid() != 0:
        pytest.skip("the kernel matrix loads BPF programs: run as root")
    t0 = time.monotonic()

    def workload():
        r = subprocess.run([sys.executable, str(HERE / "workload.py")], capture_output=True,
                           text=True, check=True, timeout=300)
        return json.loads(r.stdout)

    def one_run(programs: dict) -> tuple:
        e = Exporter(tmp_path_factory.mktemp("matrix-host"), registry, programs).start()
        try:
            end = time.monotonic() + 60
            while not settled(e.status()) and time.monotonic() < end:
                time.sleep(0.2)
            started = time.monotonic() - t0
            return started, measure(lambda p: e.get(p)[2].decode(), workload)
        finally:
            e.stop()
    started, (status, before, after, work) = one_run({n: {} for n in BUILTINS})
    forced = []
    for pass_ in matrix.variant_passes(status):   # none here unless this kernel allows 2 variants
        _s, (st, b, a, _w) = one_run({n: {"variant": v} for n, v in pass_.items()})
        forced += matrix.rows(st, b, a)
    run = matrix.KernelRun(os.uname().release, "this machine (CI host)", matrix.rows(status, before, after),
                           work, {"exporter start": started, "total": time.monotonic() - t0}, forced)
    REPORT.append(f"host {run.kernel}: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items()))
    RUNS["host"] = run
    return run


def _tar(paths: list[tuple[Path, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for src, arc in paths:
            t.add(src, arcname=arc, filter=lambda i: None if "__pycache__" in i.name else i)
    return buf.getvalue()


def _wait_ports_free(*ports: int, timeout: float = 30) -> None:
    import socket
    end = time.monotonic() + timeout
    for port in ports:
        while time.monotonic() < end:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # as QEMU binds
                try:
                    s.bind(("127.0.0.1", port))
                    break
                except OSError:
                    time.sleep(0.5)


@pytest.fixture(scope="session")
def vm_run(registry):
    RUNS["vm"] = run = _vm_run(registry, "bookworm")
    return run


@pytest.fixture(scope="session")
def vm_backports_run(registry):
    RUNS["vm-backports"] = run = _vm_run(registry, "backports")
    return run


def _vm_run(registry, kernel: str):
    """One VM of this suite's lab booted on the image's `kernel`: the exporter runs there."""
    from orchestrator.lab import LabConfig, LabError, lab as lablib
    from orchestrator.lab.image import cached_image, ensure_image
    from orchestrator.lab.ssh import ssh, ssh_argv
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    cfg = LabConfig(state_dir=os.environ.get("BPFLEET_LAB_DIR", LAB["BPFLEET_LAB_DIR"]),
                    cache_dir=os.environ.get("BPFLEET_LAB_CACHE") or "/var/cache/bpfleet-lab",
                    prefix=os.environ.get("BPFLEET_LAB_PREFIX", LAB["BPFLEET_LAB_PREFIX"]),
                    subnet=os.environ.get("BPFLEET_LAB_SUBNET", LAB["BPFLEET_LAB_SUBNET"]),
                    port_base=int(os.environ.get("BPFLEET_LAB_PORT_BASE", LAB["BPFLEET_LAB_PORT_BASE"])),
                    vm_memory_mb=VM_MEMORY_MB, vm_kernels=(kernel,))
    quiet = lambda m: None  # noqa: E731
    seconds = {}
    t = time.monotonic()
    cached = cached_image(cfg.cache_dir) is not None
    try:
        image = ensure_image(cfg.cache_dir, quiet)
    except LabError as e:
        pytest.fail(f"VM image build failed: {e}")
    seconds["image " + ("(cached)" if cached else "build")] = time.monotonic() - t
    lablib.down(cfg, quiet)
    _wait_ports_free(cfg.port_base + 1, cfg.port_base + 101)   # a QEMU just stopped may linger
    try:
        t = time.monotonic()
        st = lablib.up(cfg, 1, 1, quiet)
        seconds["VM boot to SSH"] = time.monotonic() - t
        rec = next(iter(st.hosts.values()))
        host, key = rec.host, cfg.key_file
        t = time.monotonic()
        payload = _tar([(ROOT / "core", "src/core"), (ROOT / "bpfleet", "src/bpfleet"), (ROOT / "exporter", "src/exporter"),
                        (ROOT / "programs", "src/programs"), (HERE / "workload.py", "src/workload.py"),
                        (registry, "registry")])
        subprocess.run(ssh_argv(host, key, 60) + ["--", "mkdir -p /opt/bpfleet-matrix && "
                       "tar -xz -C /opt/bpfleet-matrix"], input=payload, check=True, timeout=300,
                       capture_output=True)
        seconds["copy"] = time.monotonic() - t

        def get(path: str) -> str:
            with urllib.request.urlopen(f"{host.exporter_url}{path}", timeout=60) as r:
                return r.read().decode()

        def workload():
            r = ssh(host, key, "python3 /opt/bpfleet-matrix/src/workload.py", timeout=600, connect_timeout=60)
            return json.loads(r.stdout)

        def one_run(programs: dict[str, str | None], ready_s: float) -> tuple:
            """Start an exporter with `programs` (name -> forced variant or None), wait for it
            to settle, measure, stop it. -> (status, before, after, workload, seconds to start)"""
            config = ("listen = \"0.0.0.0:9436\"\nregistry = \"/opt/bpfleet-matrix/registry\"\n"
                      "pin_root = \"/sys/fs/bpf/bpfleet-matrix\"\nadmin_socket = \"/run/bpfleet/matrix.sock\"\n"
                      + "".join(f"[programs.{n}]\n" + (f"variant = \"{v}\"\n" if v else "")
                                for n, v in programs.items()))
            start = ("mkdir -p /run/bpfleet && cd /opt/bpfleet-matrix/src && cat > /opt/bpfleet-matrix/exporter.toml "
                     f"<<'EOF'\n{config}EOF\n"
                     "setsid python3 -c 'import argparse, sys; from exporter.daemon.process import run_exporter; "
                     "sys.exit(run_exporter(argparse.Namespace(config=sys.argv[1], listen=None, check=False, "
                     "strict=False, registry=None)))' /opt/bpfleet-matrix/exporter.toml "
                     "> /opt/bpfleet-matrix/exporter.log 2>&1 < /dev/null & echo $! > /run/bpfleet/matrix.pid")
            t = time.monotonic()
            ssh(host, key, start, timeout=120, connect_timeout=60)
            end = t + ready_s
            while True:
                try:
                    if settled(json.loads(get("/status"))):
                        break
                except OSError:
                    pass
                if time.monotonic() > end:
                    log = ssh(host, key, "tail -40 /opt/bpfleet-matrix/exporter.log", check=False).stdout
                    pytest.fail(f"the exporter in the VM did not load its programs in {ready_s} s:\n{log}")
                time.sleep(3)
            started = time.monotonic() - t
            measured = measure(get, workload)
            # Wait for it to exit (it unpins and frees the port) before the next run starts.
            ssh(host, key, "p=$(cat /run/bpfleet/matrix.pid); kill $p; "
                "while kill -0 $p 2>/dev/null; do sleep 0.2; done", check=False, timeout=120)
            return (*measured, started)
        t = time.monotonic()
        status, before, after, work, started = one_run({n: None for n in BUILTINS}, EXPORTER_READY_S)
        seconds["exporter start (bcc compiles)"] = started
        seconds["workload + scrapes"] = time.monotonic() - t - started
        t = time.monotonic()
        forced = []
        for pass_ in matrix.variant_passes(status):
            st, b, a, _w, _s = one_run(pass_, VARIANT_READY_S)
            forced += matrix.rows(st, b, a)
        seconds[f"{len(forced)} forced variants"] = time.monotonic() - t
    finally:
        lablib.down(cfg, quiet)
    k = image.kernels[kernel]
    rows = matrix.rows(status, before, after)
    if kernel in BCC_TOO_OLD:
        rows = matrix.bcc_too_old(rows, is_bcc, BCC_TOO_OLD[kernel])
    run = matrix.KernelRun(rec.kernel or k["release"],
                           f"lab VM: Debian {k['suite']} {k['version']}, QEMU TCG",
                           rows, work, seconds, forced)
    REPORT.append(f"VM {run.kernel}: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    return run

