"""The exporter process: wiring config, supervisor, HTTP, admin socket, signals and shutdown."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from core.problems import ProblemsError
from exporter import config as config_mod
from exporter import btf_source, libbpf, privileges, selfmetrics
from exporter.exposition import proto as exposition_proto
from exporter.otlp import settings as otlp_settings
from exporter.admin import make_admin_server
from exporter.breaker import Breaker
from exporter.exposition.text import render
from exporter.http_server import make_server
from exporter.mitigations.manager import Mitigations
from exporter.snapshot import SharedBodies, SnapshotCache
from exporter.supervisor import Supervisor

log = logging.getLogger("bpfleet.exporter")
RING_POLL_SECONDS = 0.2
# Records taken from each ring buffer per poll: at most 20,480 a second per ring, and a poll
# holds the supervisor lock (which scrapes wait for) for a few ms at most. A program writing
# faster fills its ring, and its bpf_ringbuf_reserve() calls fail (docs/reliability.md).
RING_RECORDS_PER_POLL = 4096
# Requests share a snapshot finished at most this long before they arrived (besides sharing one
# in progress). 0: every scrape sees the maps as they are now.
SNAPSHOT_MAX_AGE = 0.0


class Exporter:
    def __init__(self, config: config_mod.Config, registry: str):
        self.config = config
        self.supervisor = Supervisor(registry, config.pin_root, config.source, config.trusted_keys)
        self.snapshots = SnapshotCache(self.supervisor.snapshot, SNAPSHOT_MAX_AGE)
        self.supervisor.on_change = self._programs_changed
        self.bodies = SharedBodies(self.snapshots)   # scrapes of one moment share its body (exporter/snapshot.py)
        self.last_scrape_seconds: float | None = None
        self.started = time.time()
        # Callables returning extra self-metric Families on every scrape (the OTLP export's).
        self.family_providers: list = []
        self.event_sink = None     # every running program's LoadedProgram.event_sink
        self.otlp = None           # exporter.otlp.OtlpExport while OTLP export runs
        # Budgets (exporter/breaker.py); its thread runs while serving.
        self.breaker = Breaker(self.supervisor, lambda: self.config)
        self.family_providers.append(self.breaker.families)
        self.capabilities: dict | None = None   # what privileges.drop() kept, once it ran
        self.mitigations = Mitigations(self.supervisor)   # exporter/mitigations/manager.py
        self.family_providers.append(self.mitigations.families)

    def _programs_changed(self) -> None:
        """After every load, upgrade and unload (under the supervisor's lock)."""
        self.snapshots.invalidate()
        for p in self.supervisor.running():
            p.event_sink = self.event_sink

    def start_otlp(self, settings: otlp_settings.OtlpSettings) -> None:
        """Start (or restart with new settings, or stop) the OTLP export (docs/opentelemetry.md)."""
        self.stop_otlp()
        if not settings.enabled:
            return
        from exporter.otlp import push as otlp  # only when enabled: it imports the OpenTelemetry SDK and gRPC
        self.otlp = otlp.OtlpExport(self, settings, selfmetrics.BUILD_VERSION).start()
        self.family_providers.append(self.otlp.families)
        with self.supervisor.lock:
            self.event_sink = self.otlp.sink
            self._programs_changed()

    def stop_otlp(self) -> None:
        if self.otlp is None:
            return
        with self.supervisor.lock:
            self.event_sink = None
            self._programs_changed()
        self.family_providers.remove(self.otlp.families)
        self.otlp.stop()
        self.otlp = None

    formats = ("text", "protobuf")   # exporter/http_server.py negotiates with the scraper's Accept

    def scrape(self, fmt: str = "text") -> bytes:
        t0 = time.perf_counter()
        return self.bodies.get(fmt, lambda snap: self._render(snap, fmt, t0))

    def _render(self, snap, fmt: str, t0: float) -> bytes:
        families = [f for ps in snap.programs for f in ps.program.families(ps)]
        families += selfmetrics.families(snap, self.last_scrape_seconds)
        families += [f for provider in self.family_providers for f in provider()]
        body = exposition_proto.render(families) if fmt == "protobuf" else render(families)
        self.last_scrape_seconds = time.perf_counter() - t0
        return body

    def status(self) -> dict:
        programs = self.supervisor.status()
        for p in programs:
            p["budget"] = self.breaker.status(p["name"])
        return {"config": self.config.source, "registry": str(self.supervisor.registry),
                "pid": os.getpid(), "uptime_seconds": round(time.time() - self.started, 3),
                "kernel": os.uname().release, "btf": self.btf_status(), "programs": programs,
                "mitigations": self.mitigations.status(),
                "otlp": redact(self.otlp.status()) if self.otlp else {"enabled": False},
                "capabilities": self.capabilities}

    def btf_status(self) -> dict:
        """Which BTF CO-RE programs load against (exporter/btf_source.py)."""
        try:
            external = btf_source.resolve(self.config.btf, self.config.source)
            error = None
        except ProblemsError as e:
            external, error = None, str(e)
        return {"kernel": btf_source.kernel_has_btf(), "external_file": external, "error": error}

    def reload(self) -> dict:
        """Re-read the config file and apply it. -> {where: error} for what went wrong."""
        if self.config.source == config_mod.default_config().source:
            new = config_mod.default_config()
        else:
            try:
                new = config_mod.load(self.config.source)
            except ProblemsError as e:
                log.error("reload: config not applied:\n%s", e)
                return {p.field or p.file: str(p) for p in e.problems}
        try:
            otlp = otlp_settings.resolve(new.otlp, where=new.source)
        except ProblemsError as e:
            log.error("reload: config not applied:\n%s", e)
            return {p.field or p.file: str(p) for p in e.problems}
        self.config = new
        results = self.supervisor.apply(new)
        results.update(self.mitigations.apply_config(new.mitigations))
        if self.otlp is None and otlp.enabled or self.otlp is not None and self.otlp.settings != otlp:
            self.start_otlp(otlp)
        return {n: e for n, e in results.items() if e}

    def consume_events_forever(self, stop: threading.Event) -> None:
        while not stop.wait(RING_POLL_SECONDS):
            try:
                self.supervisor.consume_events(RING_RECORDS_PER_POLL)
            except Exception:
                log.exception("ring buffer consumer")


_URL_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact(obj):
    """No credentials in /status: user:password@ in URLs becomes <redacted>@ (OTLP header
    values are never shown at all, only their names)."""
    if isinstance(obj, str):
        return _URL_USERINFO.sub(r"\1<redacted>@", obj)
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def prepare_kernel_filesystems() -> None:
    """bpffs for pins, tracefs for tracepoint ids; mount what is missing (we run as root)."""
    for fstype, path in (("bpf", "/sys/fs/bpf"), ("tracefs", "/sys/kernel/tracing")):
        if subprocess.run(["mountpoint", "-q", path]).returncode != 0:
            r = subprocess.run(["mount", "-t", fstype, fstype, path], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"bpfleet exporter: {path} is not mounted and mounting it failed: {r.stderr.strip()}")
            log.info("mounted %s on %s", fstype, path)


def clean_stale_pins(pin_root: str) -> None:
    """Pins left by a crashed exporter keep programs attached; remove them before we start."""
    if os.path.isdir(pin_root) and os.listdir(pin_root):
        log.warning("removing pins left behind by a previous run under %s", pin_root)
        shutil.rmtree(pin_root, ignore_errors=True)


def print_check_report(exporter: Exporter) -> bool:
    status = exporter.status()["programs"]
    fine = ("attached", "not_applicable")
    ok = all(s["state"] in fine for s in status) and bool(status)
    for s in status:
        mark = "ok  " if s["state"] in fine else "FAIL"
        print(f"{mark} {s['name']}@{s['version'] or s['wanted_version']}: {s['state']}"
              + (f" (variant {s['variant']})" if s.get("variant") else "")
              + (f" — {s['error']}" if s["error"] else "")
              + (f" — {s['not_applicable']}" if s.get("not_applicable") else ""))
        for v in s.get("variants", ()):
            if v["state"] != "running":
                print(f"     variant {v['variant']}: {v['state']}: {v['reason']}")
        if s.get("verifier_log"):
            print("     " + s["verifier_log"].replace("\n", "\n     "))
    for m in exporter.mitigations.status():   # not running on purpose is not a failure, but said
        ok = ok and m["state"] != "failed"
        print(f"{'FAIL' if m['state'] == 'failed' else 'ok  '} mitigation {m['name']}@{m['version']}: "
              f"{m['state']}" + (f" — {m['reason']}" if m["reason"] else ""))
    return ok


def run_exporter(args) -> int:
    logging.basicConfig(level=os.environ.get("BPFLEET_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("bpfleet exporter: must run as root (it loads BPF programs)", file=sys.stderr)
        return 2
    try:
        cfg = config_mod.load(args.config)
        listen = args.listen or cfg.listen
        host, port = config_mod.parse_listen(listen, "--listen" if args.listen else cfg.source)
        otlp = otlp_settings.resolve(cfg.otlp, where=cfg.source)
    except ProblemsError as e:
        print(f"bpfleet exporter: bad config:\n{e}", file=sys.stderr)
        return 2
    registry = cfg.registry or args.registry
    lacking = privileges.missing()
    if lacking:
        print(f"bpfleet exporter: missing capabilities {', '.join(c.upper() for c in lacking)} "
              "(needed to load and attach BPF programs; see docs/security.md)", file=sys.stderr)
        return 2
    prepare_kernel_filesystems()
    clean_stale_pins(cfg.pin_root)
    stats_fd, stats_note = start_bpf_stats()
    exporter = Exporter(cfg, registry)
    exporter.breaker.stats_note = stats_note
    stop = threading.Event()
    try:
        errors = exporter.supervisor.apply(cfg)
        errors.update(exporter.mitigations.apply_config(cfg.mitigations))
        failed = {n: e for n, e in errors.items() if e}
        if args.check:
            ok = print_check_report(exporter)
            body = exporter.scrape()
            print(f"scrape: {len(body)} bytes, {exporter.last_scrape_seconds * 1000:.1f} ms")
            return 0 if ok else 1
        if failed and args.strict:
            log.error("--strict: %d program(s) failed to load: %s", len(failed), ", ".join(failed))
            return 1
        exporter.capabilities = drop_privileges(exporter)
        exporter.start_otlp(otlp)
        return serve(exporter, host, port, stop)
    finally:
        stop.set()
        exporter.stop_otlp()
        exporter.supervisor.close()
        shutil.rmtree(cfg.pin_root, ignore_errors=True)
        if stats_fd is not None:
            os.close(stats_fd)


def start_bpf_stats() -> tuple[int | None, str | None]:
    """Kernel run-time stats on for as long as we live (BPF_ENABLE_STATS needs CAP_SYS_ADMIN).
    Without it, the kernel.bpf_stats_enabled sysctl does the same (the systemd unit sets it).
    -> (fd to keep open or None, a note for /status when stats are off)."""
    try:
        return libbpf.enable_stats(), None
    except libbpf.LibbpfError as e:
        try:
            with open("/proc/sys/kernel/bpf_stats_enabled") as f:
                if f.read().strip() == "1":
                    log.info("bpf_stats on through kernel.bpf_stats_enabled (%s)", e)
                    return None, None
        except OSError:
            pass
        note = ("bpf_stats are off: kernel cost is not measured and budgets are not enforced "
                f"({e}; give CAP_SYS_ADMIN or set kernel.bpf_stats_enabled=1)")
        log.error("%s", note)
        return None, note


def drop_privileges(exporter: Exporter) -> dict | None:
    """After the first attach, keep only what reloads and upgrades need (exporter/privileges.py)."""
    types = {t for p in exporter.supervisor.running() for t in p.plan.manifest.program_types}
    if exporter.config.accept_mitigations:
        # A host that takes mitigations keeps what attaching XDP / cgroup ones needs, so one
        # can be applied through the admin API without a restart (docs/security.md).
        types |= {"xdp", "cgroup_device"}
    if any(lp.decoder == "ksym" for p in exporter.supervisor.running()
           for mp in p.plan.metrics for lp in mp.labels):
        from core.decoders.kernel import kernel_symbol
        kernel_symbol(0)   # read /proc/kallsyms while we may (CAP_SYSLOG): after, addresses read as 0
    try:
        result = privileges.drop(privileges.keep_for(types))
    except OSError as e:
        log.error("could not drop capabilities: %s", e)
        return {"error": str(e), **privileges.current()}
    log.info("capabilities kept: %s; dropped: %s%s", ", ".join(result["kept"]) or "none",
             ", ".join(result["dropped"]) or "none",
             "" if result["bounding_set"] else " (bounding set unchanged: no CAP_SETPCAP)")
    return result


def serve(exporter: Exporter, host: str, port: int, stop: threading.Event) -> int:
    try:
        http = make_server(host, port, exporter)
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", host, port, e)
        return 1
    admin = make_admin_server(exporter.config.admin_socket, exporter)
    threads = [threading.Thread(target=http.serve_forever, args=(0.1,), name="http", daemon=True),
               threading.Thread(target=admin.serve_forever, args=(0.1,), name="admin", daemon=True),
               threading.Thread(target=exporter.consume_events_forever, args=(stop,), name="ringbuf", daemon=True),
               threading.Thread(target=exporter.breaker.run, args=(stop,), name="breaker", daemon=True),
               threading.Thread(target=exporter.mitigations.run, args=(stop,), name="mitigations", daemon=True)]
    for t in threads:
        t.start()
    hup = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("serving http://%s:%d/metrics (admin socket %s)", host, port, exporter.config.admin_socket)
    print(json.dumps({"event": "ready", "listen": f"{host}:{port}",
                      "admin_socket": exporter.config.admin_socket}), flush=True)
    while not stop.is_set():
        if hup.wait(0.1):
            hup.clear()
            log.info("SIGHUP: reloading %s", exporter.config.source)
            exporter.reload()
    log.info("shutting down")
    http.shutdown()
    admin.shutdown()
    admin.server_close()
    try:
        os.unlink(exporter.config.admin_socket)
    except OSError:
        pass
    return 0
