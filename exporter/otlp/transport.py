"""The OTLP transport under exporter/otlp/push.py: the SDK's OTLP exporters (gRPC or
HTTP/protobuf), export outcomes per signal, the backoff after failures, and the log exporter
wrapper that counts what the batch processor hands over."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Protocol

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from exporter.otlp.settings import SignalSettings

log = logging.getLogger("bpfleet.otlp")
BACKOFF_FACTOR_CAP = 4         # failures stretch the interval up to 4x ...
BACKOFF_SECONDS_CAP = 300.0    # ... and to at most 5 minutes (never below the interval itself)
BACKOFF_JITTER = 0.1


def metric_exporter(s: SignalSettings):
    if s.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        return OTLPMetricExporter(endpoint=s.endpoint, headers=dict(s.headers), timeout=s.timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return OTLPMetricExporter(endpoint=s.endpoint, headers=dict(s.headers), timeout=s.timeout)


def log_exporter(s: SignalSettings):
    if s.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        return OTLPLogExporter(endpoint=s.endpoint, headers=dict(s.headers), timeout=s.timeout)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    return OTLPLogExporter(endpoint=s.endpoint, headers=dict(s.headers), timeout=s.timeout)


class SignalStats:
    """Export outcomes of one signal. Written by one thread, read by scrapes."""

    def __init__(self, signal: str):
        self.signal = signal
        self.results = {"success": 0, "failure": 0}
        self.last_duration: float | None = None
        self.consecutive_failures = 0
        self.last_success_unix: float | None = None

    def record(self, ok: bool, seconds: float) -> None:
        self.results["success" if ok else "failure"] += 1
        self.last_duration = seconds
        if ok:
            if self.consecutive_failures:
                log.info("OTLP %s export succeeded again after %d failure(s)", self.signal,
                         self.consecutive_failures)
            self.consecutive_failures = 0
            self.last_success_unix = time.time()
        else:
            if not self.consecutive_failures:
                log.warning("OTLP %s export failed; later failures are counted in "
                            "bpfleet_otlp_exports_total, not logged, until one succeeds", self.signal)
            self.consecutive_failures += 1


def backoff_delay(interval: float, failures: int, rand=random.random) -> float:
    """Seconds until the next push: the interval, stretched by consecutive failures (x2 each,
    up to BACKOFF_FACTOR_CAP x interval and BACKOFF_SECONDS_CAP, never below the interval),
    with +-10% jitter while backing off so a fleet does not come back in lockstep."""
    if failures <= 0:
        return interval
    cap = max(interval, min(interval * BACKOFF_FACTOR_CAP, BACKOFF_SECONDS_CAP))
    delay = min(interval * 2 ** min(failures, 16), cap)
    return delay * (1 + BACKOFF_JITTER * (2 * rand() - 1))


class LogOutcomes(Protocol):
    """Where CountingLogExporter counts (exporter/otlp/push.py's OtlpExport)."""
    logs_stats: "SignalStats"
    events_exported: int
    events_dropped: dict


class CountingLogExporter(LogRecordExporter):
    """Wraps the OTLP log exporter: counts what the batch processor hands over and how each
    export ends. No backoff of our own here: the processor makes one attempt per batch, each
    bounded by the timeout, and while attempts are slow its queue fills and the event pump
    stops feeding it (so the event queue fills, and drops are counted as queue_full)."""

    def __init__(self, inner, owner: LogOutcomes):
        self.inner, self.owner = inner, owner
        self.handed = 0
        self._closed = False

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        o, n = self.owner, len(batch)
        self.handed += n
        stats = o.logs_stats
        if self._closed:
            o.events_dropped["export_failed"] += n
            return LogRecordExportResult.FAILURE
        t0 = time.perf_counter()
        try:
            result = self.inner.export(batch)
        except Exception:
            log.exception("OTLP log export")
            result = LogRecordExportResult.FAILURE
        ok = result == LogRecordExportResult.SUCCESS
        stats.record(ok, time.perf_counter() - t0)
        if ok:
            o.events_exported += n
        else:
            o.events_dropped["export_failed"] += n
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self.inner.shutdown()
