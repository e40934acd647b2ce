"""The exporter process: logging, config, host preparation (exporter/daemon/host.py), the
application (exporter/daemon/app.py), its threads (HTTP, admin socket, ring buffers, breaker,
mitigation expiry), signals (SIGHUP reloads, SIGTERM/SIGINT stop) and an orderly shutdown."""
from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
from typing import Callable

from core.problems import ProblemsError
from exporter import config as config_mod
from exporter import kallsyms
from exporter.admin import make_admin_server
from exporter.daemon import host
from exporter.daemon.app import ExporterApp
from exporter.http_server import make_server
from exporter.otlp import settings as otlp_settings

log = logging.getLogger("bpfleet.exporter")
# Comma-separated modules (importable from sys.path) whose before_load(artifact) is called
# before every program load. bpfleet ships none; the tests inject faults with one (tests/faults/).
PLUGINS_ENV = "BPFLEET_EXPORTER_PLUGINS"
# How often the HTTP and admin servers and the main loop look for shutdown and SIGHUP: each look
# is a wakeup of an idle exporter (at 0.1 s these cost ~0.07 % of a core apiece, bench/bench_rss.py).
IDLE_POLL_SECONDS = 0.5


def load_plugins(spec: str) -> tuple[Callable, ...]:
    """The before_load hooks of the modules named in `spec`. ImportError / AttributeError."""
    return tuple(importlib.import_module(name).before_load
                 for name in (n.strip() for n in spec.split(",")) if name)


def run_exporter(args) -> int:
    logging.basicConfig(level=os.environ.get("BPFLEET_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("bpfleet exporter: must run as root (it loads BPF programs)", file=sys.stderr)
        return 2
    try:
        cfg = config_mod.load(args.config)
        listen = args.listen or cfg.listen
        addr, port = config_mod.parse_listen(listen, "--listen" if args.listen else cfg.source)
        otlp = otlp_settings.resolve(cfg.otlp, where=cfg.source)
    except ProblemsError as e:
        print(f"bpfleet exporter: bad config:\n{e}", file=sys.stderr)
        return 2
    try:
        hooks = load_plugins(os.environ.get(PLUGINS_ENV, ""))
    except (ImportError, AttributeError) as e:
        print(f"bpfleet exporter: {PLUGINS_ENV}: {e}", file=sys.stderr)
        return 2
    if (why := host.missing_capabilities()) is not None:
        print(f"bpfleet exporter: {why}", file=sys.stderr)
        return 2
    host.prepare_kernel_filesystems()
    host.clean_stale_pins(cfg.pin_root)
    kallsyms.install()   # ksym labels from /proc/kallsyms, read when first needed
    stats_fd, stats_note = host.start_bpf_stats()
    app = ExporterApp(cfg, cfg.registry or args.registry, hooks)
    app.breaker.stats_note = stats_note
    stop = threading.Event()
    try:
        failed = {n: e for n, e in app.apply_config().items() if e}
        if args.check:
            ok = print_check_report(app)
            body = app.scrape()
            print(f"scrape: {len(body)} bytes, {app.last_scrape_seconds * 1000:.1f} ms")
            return 0 if ok else 1
        if failed and args.strict:
            log.error("--strict: %d program(s) failed to load: %s", len(failed), ", ".join(failed))
            return 1
        running = [v.running for v in app.supervisor.views().values() if v.running]
        app.capabilities = host.drop_privileges(running, cfg.accept_mitigations)
        app.start_otlp(otlp)
        return serve(app, addr, port, stop)
    finally:
        stop.set()
        app.close()
        shutil.rmtree(cfg.pin_root, ignore_errors=True)
        if stats_fd is not None:
            os.close(stats_fd)


def print_check_report(app: ExporterApp) -> bool:
    """`bpfleet exporter --check`: one line per program and mitigation. -> all fine."""
    status = app.status()
    fine = ("attached", "not_applicable")
    ok = all(s["state"] in fine for s in status["programs"]) and bool(status["programs"])
    for s in status["programs"]:
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
    for m in status["mitigations"]:   # not running on purpose is not a failure, but said
        ok = ok and m["state"] != "failed"
        print(f"{'FAIL' if m['state'] == 'failed' else 'ok  '} mitigation {m['name']}@{m['version']}: "
              f"{m['state']}" + (f" — {m['reason']}" if m["reason"] else ""))
    return ok


def serve(app: ExporterApp, addr: str, port: int, stop: threading.Event) -> int:
    try:
        http = make_server(addr, port, app)
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", addr, port, e)
        return 1
    socket_path = app.config.admin_socket
    admin = make_admin_server(socket_path, app)
    threads = [threading.Thread(target=http.serve_forever, args=(IDLE_POLL_SECONDS,), name="http", daemon=True),
               threading.Thread(target=admin.serve_forever, args=(IDLE_POLL_SECONDS,), name="admin", daemon=True),
               threading.Thread(target=app.consume_events_forever, args=(stop,), name="ringbuf", daemon=True),
               threading.Thread(target=app.breaker.run, args=(stop,), name="breaker", daemon=True),
               threading.Thread(target=app.mitigations.run, args=(stop,), name="mitigations", daemon=True)]
    for t in threads:
        t.start()
    hup = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: hup.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("serving http://%s:%d/metrics (admin socket %s)", addr, port, socket_path)
    print(json.dumps({"event": "ready", "listen": f"{addr}:{port}", "admin_socket": socket_path}),
          flush=True)
    while not stop.is_set():
        if hup.wait(IDLE_POLL_SECONDS):
            hup.clear()
            log.info("SIGHUP: reloading %s", app.config.source)
            app.reload()
    log.info("shutting down")
    http.shutdown()
    admin.shutdown()
    admin.server_close()
    try:
        os.unlink(socket_path)
    except OSError:
        pass
    return 0
