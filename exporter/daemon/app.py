"""The exporter application: the supervisor (programs), the mitigations, the circuit breaker,
the snapshot cache and the OTLP export, wired together; scrape, status, config reload.

What the outside faces get of it is typed where they are defined: exporter/http_server.py
`MetricsSite`, exporter/admin.py `AdminTarget`, and the OTLP export a snapshot callable. The
process around it (signals, threads, main loop) is exporter/daemon/process.py.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Callable

from core.problems import ProblemsError
from exporter import btf_source, selfmetrics
from exporter import config as config_mod
from exporter.breaker import Breaker
from exporter.config import ProgramConfig
from exporter.exposition import proto as exposition_proto
from exporter.exposition.text import render
from exporter.mitigations.manager import Mitigations
from exporter.otlp import settings as otlp_settings
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


class ExporterApp:
    formats = ("text", "protobuf")   # exporter/http_server.py negotiates with the scraper's Accept

    def __init__(self, config: config_mod.Config, registry: str, before_load: tuple[Callable, ...] = ()):
        """`before_load`: called with each Artifact before it is loaded (Supervisor)."""
        self.config, self.registry = config, registry
        self.supervisor = Supervisor(registry, config.pin_root, config.source, config.trusted_keys,
                                     before_load=before_load, on_change=self._programs_changed)
        self.snapshots = SnapshotCache(self.supervisor.snapshot, SNAPSHOT_MAX_AGE)
        self.bodies = SharedBodies(self.snapshots)   # scrapes of one moment share its body (exporter/snapshot.py)
        self.last_scrape_seconds: float | None = None
        self.started = time.time()
        self.otlp = None           # exporter.otlp.push.OtlpExport while OTLP export runs
        # Budgets (exporter/breaker.py); its thread runs while serving.
        self.breaker = Breaker(self.supervisor, lambda: self.config)
        self.mitigations = Mitigations(self.supervisor)   # exporter/mitigations/manager.py
        # Callables returning extra self-metric Families on every scrape.
        self.family_providers: list = [self.breaker.families, self.mitigations.families]
        self.capabilities: dict | None = None   # what privileges.drop() kept, once it ran

    def _programs_changed(self) -> None:
        """After every load, upgrade and unload (under the supervisor's lock)."""
        self.snapshots.invalidate()

    # ---- lifecycle ----
    def apply_config(self) -> dict[str, str | None]:
        """Load what the config says (programs, then mitigations). -> name -> error or None."""
        results = self.supervisor.apply(self.config)
        results.update(self.mitigations.apply_config(self.config.mitigations))
        return results

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
        results = self.apply_config()
        if self.otlp is None and otlp.enabled or self.otlp is not None and self.otlp.settings != otlp:
            self.start_otlp(otlp)
        return {n: e for n, e in results.items() if e}

    def deploy(self, pc: ProgramConfig, digest: str | None = None) -> str | None:
        """The admin API's PUT /programs/<name>. -> error text or None."""
        return self.supervisor.deploy(pc, digest)

    def unload(self, name: str) -> bool:
        return self.supervisor.unload(name)

    def close(self) -> None:
        self.stop_otlp()
        self.supervisor.close()

    def start_otlp(self, settings: otlp_settings.OtlpSettings) -> None:
        """Start (or restart with new settings, or stop) the OTLP export (docs/opentelemetry.md)."""
        self.stop_otlp()
        if not settings.enabled:
            return
        from exporter.otlp import push  # only when enabled: it imports the OpenTelemetry SDK and gRPC
        self.otlp = push.OtlpExport(self.snapshots.get, settings, selfmetrics.BUILD_VERSION).start()
        self.family_providers.append(self.otlp.families)
        self.supervisor.set_event_sink(self.otlp.sink)

    def stop_otlp(self) -> None:
        if self.otlp is None:
            return
        self.supervisor.set_event_sink(None)
        self.family_providers.remove(self.otlp.families)
        self.otlp.stop()
        self.otlp = None

    def consume_events_forever(self, stop: threading.Event) -> None:
        while not stop.wait(RING_POLL_SECONDS):
            try:
                self.supervisor.consume_events(RING_RECORDS_PER_POLL)
            except Exception:
                log.exception("ring buffer consumer")

    # ---- what is served ----
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
        return {"config": self.config.source, "registry": str(self.registry),
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
