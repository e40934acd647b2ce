"""OpenTelemetry export: the one module that speaks OTLP (docs/opentelemetry.md).

* Metrics: a pusher thread takes the shared snapshot (`Exporter.snapshots.get()`, the same
  single-flight cache /metrics uses; it never reads maps and never takes the render lock),
  converts it with exporter/otlp/metrics.py and hands the MetricsData to the OTLP metric
  exporter (gRPC or HTTP/protobuf) on its own schedule. Consecutive failures stretch the
  interval (doubling, jittered, capped); the OTLP exporters' own retries stay inside
  `timeout`, which bounds every export.
* Events: ring-buffer records arrive through exporter/events.py's EventSink (rate-limited,
  bounded, filled by the ring-buffer consumer thread); a pump thread decodes them and emits
  OTel log records into a LoggerProvider whose BatchLogRecordProcessor sends them with the
  OTLP log exporter. The pump stops feeding the processor while its queue is full, so nothing
  is dropped silently: every lost event is counted with its reason.
* Self-metrics (Prometheus, bpfleet_otlp_*) through `families()`, which the exporter calls
  on every scrape (exporter/daemon/app.py `family_providers`).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.extras import require

require("otlp", "OTLP export", "opentelemetry.sdk")
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics.export import MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.version import __version__ as SDK_VERSION

from exporter.events import EventDecoder, EventSink
from core.series import EMPTY, Family, LabelSet
from exporter.otlp.metrics import MetricsConverter
from exporter.otlp.settings import OtlpSettings, default_resource_attributes
from exporter.otlp.transport import (CountingLogExporter, SignalStats, backoff_delay, log_exporter,
                                     metric_exporter)
from exporter.snapshot import Snapshot

log = logging.getLogger("bpfleet.otlp")
EVENT_POLL_SECONDS = 0.2
LOG_QUEUE_SIZE = 2048          # the BatchLogRecordProcessor's queue; the pump never overfills it
LOG_BATCH_SIZE = 512
LOG_SCHEDULE_MILLIS = 1000
STOP_SECONDS = 2.0             # at shutdown: time left for queued events to go out


def build_resource(settings: OtlpSettings, version: str) -> Resource:
    attrs = {"telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "python",
             "telemetry.sdk.version": SDK_VERSION}
    attrs.update(default_resource_attributes(version))
    attrs.update(settings.resource)
    return Resource(attrs)


class OtlpExport:
    """The running OTLP export of one exporter: start(), stop(), families(), status().
    `snapshot()` is what it pushes (the exporter's shared snapshot cache)."""

    def __init__(self, snapshot: Callable[[], Snapshot], settings: OtlpSettings, version: str):
        self.snapshot, self.settings, self.version = snapshot, settings, version
        self.resource = build_resource(settings, version)
        self.metrics_stats = SignalStats("metrics")
        self.logs_stats = SignalStats("logs")
        self.points_exported = 0
        self.next_delay = settings.interval
        self.events_exported = 0
        self.events_dropped = {"export_failed": 0, "decode_error": 0}
        self.sink = EventSink(settings.events_per_second) if settings.logs else None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._metric_exporter = self._converter = None
        self._provider = self._processor = self._log_exporter = None
        self._emitted = 0
        self._decoders: dict = {}

    # ---- lifecycle ----
    def start(self) -> "OtlpExport":
        s = self.settings
        if s.metrics:
            self._metric_exporter = metric_exporter(s.metrics)
            self._converter = MetricsConverter(self.resource, s.temporality)
            self._threads.append(threading.Thread(target=self._push_loop, name="otlp-metrics", daemon=True))
        if s.logs:
            self._log_exporter = CountingLogExporter(log_exporter(s.logs), self)
            self._processor = BatchLogRecordProcessor(
                self._log_exporter, schedule_delay_millis=LOG_SCHEDULE_MILLIS,
                max_export_batch_size=LOG_BATCH_SIZE, max_queue_size=LOG_QUEUE_SIZE)
            self._provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
            self._provider.add_log_record_processor(self._processor)
            self._threads.append(threading.Thread(target=self._event_loop, name="otlp-events", daemon=True))
        for t in self._threads:
            t.start()
        log.info("OTLP export: %s", self.settings.summary())
        return self

    def stop(self) -> None:
        """Stop pushing and abort exports in flight (an OTLP exporter's shutdown cuts its
        retries short); queued events get STOP_SECONDS to go out. Never raises."""
        self._stop.set()
        try:
            if self._metric_exporter is not None:
                self._metric_exporter.shutdown()
            if self._provider is not None:
                # The processor's shutdown exports what is queued, with no time limit of its
                # own: give it STOP_SECONDS, then close the exporter under it.
                t = threading.Thread(target=self._provider.shutdown, name="otlp-logs-stop", daemon=True)
                t.start()
                t.join(STOP_SECONDS)
                self._log_exporter.shutdown()
        except Exception:
            log.exception("stopping the OTLP export")
        for t in self._threads:
            t.join(timeout=STOP_SECONDS)

    # ---- metrics ----
    def _push_loop(self) -> None:
        while not self._stop.wait(self.next_delay):
            t0 = time.monotonic()
            self.push_once()
            failures = self.metrics_stats.consecutive_failures
            self.next_delay = max(0.0, backoff_delay(self.settings.interval, failures) - (time.monotonic() - t0))

    def push_once(self) -> bool:
        """Take the shared snapshot, convert it, export it. -> success."""
        t0 = time.perf_counter()
        try:
            push = self._converter.convert(self.snapshot())
        except Exception:
            log.exception("OTLP: converting the snapshot failed")
            self.metrics_stats.record(False, time.perf_counter() - t0)
            return False
        try:
            result = self._metric_exporter.export(push.data, timeout_millis=self.settings.metrics.timeout * 1000)
            ok = result == MetricExportResult.SUCCESS
        except Exception:
            log.exception("OTLP metric export")
            ok = False
        self.metrics_stats.record(ok, time.perf_counter() - t0)
        if ok:
            self._converter.commit(push)
            self.points_exported += push.points
        return ok

    # ---- events ----
    def _event_loop(self) -> None:
        while not self._stop.wait(EVENT_POLL_SECONDS):
            try:
                self.drain_events()
            except Exception:
                log.exception("OTLP event pump")

    def drain_events(self) -> int:
        """Decode queued events into log records, as many as the batch processor has room for."""
        room = LOG_QUEUE_SIZE - (self._emitted - self._log_exporter.handed)
        if room <= 0:
            return 0
        n = 0
        for ev in self.sink.pop(room):
            key = (ev.program, ev.version, ev.plan)
            dec = self._decoders.get(key)
            if dec is None:
                if len(self._decoders) > 256:
                    self._decoders.clear()
                dec = self._decoders[key] = EventDecoder(ev.plan, ev.program, ev.version)
            try:
                d = dec.decode(ev.data)
            except Exception:
                self.events_dropped["decode_error"] += 1
                continue
            self._provider.get_logger(ev.program, ev.version).emit(
                timestamp=ev.time_unix_ns, observed_timestamp=ev.time_unix_ns,
                severity_number=SeverityNumber.INFO, severity_text="INFO",
                body=d.body, attributes=d.attributes, event_name=d.event_name)
            self._emitted += 1
            n += 1
        return n

    # ---- reporting ----
    def families(self) -> list[Family]:
        exports, duration, failures, last_ok = [], [], [], []
        for st in (self.metrics_stats, self.logs_stats):
            if (st is self.metrics_stats and not self.settings.metrics) or \
               (st is self.logs_stats and not self.settings.logs):
                continue
            for result, n in st.results.items():
                exports.append(("", LabelSet.of([("signal", st.signal), ("result", result)]), n))
            sl = LabelSet.of([("signal", st.signal)])
            failures.append(("", sl, st.consecutive_failures))
            if st.last_duration is not None:
                duration.append(("", sl, st.last_duration))
            if st.last_success_unix is not None:
                last_ok.append(("", sl, st.last_success_unix))
        fams = [
            Family("bpfleet_otlp_exports_total", "counter", "OTLP exports by signal and result", exports),
            Family("bpfleet_otlp_export_duration_seconds", "gauge",
                   "Time the latest OTLP export took (including the OTLP exporter's retries)", duration),
            Family("bpfleet_otlp_consecutive_failures", "gauge",
                   "OTLP exports that failed in a row (0 once one succeeds)", failures),
            Family("bpfleet_otlp_last_success_timestamp_seconds", "gauge",
                   "Unix time of the latest successful OTLP export", last_ok),
        ]
        if self.settings.metrics:
            fams += [
                Family("bpfleet_otlp_push_interval_seconds", "gauge",
                       "Seconds until the next metrics push: the interval, stretched by backoff",
                       [("", EMPTY, self.next_delay)]),
                Family("bpfleet_otlp_data_points_exported_total", "counter",
                       "Metric data points delivered over OTLP", [("", EMPTY, self.points_exported)]),
            ]
        if self.sink is not None:
            dropped = dict(self.sink.dropped, **self.events_dropped)
            inflight = self._emitted - self._log_exporter.handed
            fams += [
                Family("bpfleet_otlp_events_exported_total", "counter",
                       "Ring-buffer events delivered as OTLP log records", [("", EMPTY, self.events_exported)]),
                Family("bpfleet_otlp_events_dropped_total", "counter",
                       "Ring-buffer events not delivered over OTLP, by reason",
                       [("", LabelSet.of([("reason", r)]), n) for r, n in sorted(dropped.items())]),
                Family("bpfleet_otlp_event_queue_length", "gauge",
                       "Events waiting: decoded in the batch processor, or raw in the event queue",
                       [("", LabelSet.of([("queue", "events")]), len(self.sink)),
                        ("", LabelSet.of([("queue", "batch")]), max(0, inflight))]),
                Family("bpfleet_otlp_event_queue_capacity", "gauge", "Capacity of each event queue",
                       [("", LabelSet.of([("queue", "events")]), self.sink.capacity),
                        ("", LabelSet.of([("queue", "batch")]), LOG_QUEUE_SIZE)]),
            ]
        return fams

    def status(self) -> dict:
        out = self.settings.summary()
        for st in (self.metrics_stats, self.logs_stats):
            out[f"{st.signal}_exports"] = dict(st.results, consecutive_failures=st.consecutive_failures,
                                               last_success_unix=st.last_success_unix)
        if self.sink is not None:
            out["events"] = {"exported": self.events_exported, "queued": len(self.sink),
                             "dropped": dict(self.sink.dropped, **self.events_dropped)}
        return out
