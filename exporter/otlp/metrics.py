"""Snapshot → the OpenTelemetry SDK's metric data model (MetricsData), for the OTLP pusher.

Pure: no network, no kernel, no clock (every time comes from the Snapshot and the programs).
exporter/otlp/push.py feeds it a Snapshot per push and sends the result; tests feed synthetic ones.

Why not the SDK's instruments: the SDK has no observable histogram, and its readers would
aggregate again what the kernel already aggregated. The maps *are* the aggregation, so this
module builds the export data model directly — the "bridge" (docs/opentelemetry.md):

* every program is one instrumentation scope (its name and version);
* decoding is the Prometheus path's own: per-program MetricCollector instances of our own (the
  label caches are not shared with /metrics, so neither side waits for the other) produce the
  same Family objects; each label set gives its attributes (core/series.py LabelSet.attributes,
  made once per label set), names stay the Prometheus names;
* counter → monotonic Sum, gauge → Gauge, histogram → ExponentialHistogram at OTel scale 0
  when that is exact for every possible content of the metric (core/histograms.py
  `why_not_exponential`, decided once per metric), else an explicit-bucket Histogram, which is
  always exact. Never approximated, never flattened into counters;
* temporality: cumulative (default), delta (counters and histograms, against the previous
  *successful* push, so a failed push loses nothing), or lowmemory (delta histograms,
  cumulative counters). A value below the previous one is a reset: a cumulative series gets a
  new start time, a delta one reports the new value as its delta.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality, Buckets, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, MetricsData, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from core.histograms import exponential, explicit_buckets, why_not_exponential
from exporter.collect import MetricCollector
from exporter.snapshot import Snapshot

CUMULATIVE = AggregationTemporality.CUMULATIVE
DELTA = AggregationTemporality.DELTA
# Prometheus base-unit suffixes → UCUM units, as the OTel↔Prometheus name translation has them.
UNIT_SUFFIXES = (("_seconds", "s"), ("_bytes", "By"), ("_ratio", "1"), ("_percent", "%"),
                 ("_celsius", "Cel"), ("_hertz", "Hz"), ("_joules", "J"), ("_volts", "V"),
                 ("_amperes", "A"), ("_watts", "W"), ("_meters", "m"), ("_grams", "g"))
EMPTY_BUCKETS = Buckets(offset=0, bucket_counts=[])


def unit_of(name: str) -> str:
    """The UCUM unit of a Prometheus-style name: bio_latency_seconds → "s"; "" when none."""
    base = name[:-len("_total")] if name.endswith("_total") else name
    return next((u for suffix, u in UNIT_SUFFIXES if base.endswith(suffix)), "")


def temporalities(preference: str) -> tuple[AggregationTemporality, AggregationTemporality]:
    """(counters, histograms) for OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE semantics.
    Our counters are observed, not recorded, so "lowmemory" keeps them cumulative."""
    if preference == "delta":
        return DELTA, DELTA
    if preference == "lowmemory":
        return CUMULATIVE, DELTA
    return CUMULATIVE, CUMULATIVE


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class _Series:
    """What the converter remembers about one series between pushes."""
    start: int              # cumulative: start of accumulation
    seen: object            # value at the last conversion (reset detection)
    seen_time: int
    base: object = None     # delta: value at the last successful push (None: counts from zero)
    base_time: int = 0


@dataclass
class Push:
    """One conversion: the data to send, and what to remember if sending succeeds."""
    data: MetricsData
    time_unix_ns: int
    points: int
    commits: list = field(default_factory=list)    # (_Series, value): delta baselines
    programs: tuple = ()


class _ProgramView:
    """Our own decoding state for one LoadedProgram: collectors mirroring its Prometheus ones."""

    def __init__(self, program):
        self.program = program
        self.metrics = []
        for c, map_name in program.collectors:
            mine = MetricCollector(c.plan, c.ncpus)
            exp = None
            if c.plan.hist:
                exp = why_not_exponential(c.plan.spec.buckets, c.plan.hist.slots, c.plan.spec.scale) is None
            self.metrics.append((mine, map_name, exp))
        self.scope = InstrumentationScope(program.name, program.artifact.version, None,
                                          {"bpfleet.program.digest": program.artifact.digest})


class MetricsConverter:
    """Snapshot → Push. Keeps per-series start times and delta baselines, bounded by the series
    present in the latest snapshot (state of series that vanished is dropped)."""

    def __init__(self, resource: Resource, temporality: str = "cumulative"):
        self.resource = resource
        self.temporality = temporality
        self.counter_temporality, self.histogram_temporality = temporalities(temporality)
        self._views: dict[int, _ProgramView] = {}       # id(LoadedProgram) -> view
        self._series: dict[tuple, dict] = {}           # (program, metric) -> {series key: _Series}
        self._program_start: dict[str, int] = {}       # program name -> start of its counts (ns)
        self._program_commit: dict[str, int] = {}      # program name -> last successful push (ns)

    # ---- public ----
    def convert(self, snap: Snapshot) -> Push:
        now = snap.time_unix_ns
        push = Push(None, now, 0)
        series: dict[tuple, dict] = {}     # becomes self._series: only what this snapshot has
        scopes = []
        views = {}
        for ps in snap.programs:
            view = self._views.get(id(ps.program))
            if view is None or view.program is not ps.program:
                view = _ProgramView(ps.program)
            views[id(ps.program)] = view
            name = ps.program.name
            loaded = _ns(ps.program.loaded_at)
            # Counts may carry over from an earlier version (shared maps): keep the earliest
            # start while the program stays loaded; resets are caught per series below.
            self._program_start[name] = min(self._program_start.get(name, loaded), loaded)
            metrics = []
            for collector, map_name, exp in view.metrics:
                d = ps.maps.get(map_name)
                if d is None:
                    continue
                fam = collector.family(memoryview(d.keys), memoryview(d.values), d.count)
                m = self._metric(name, loaded, collector, fam, exp, now, push, series)
                if m.data.data_points:   # OTLP has no way to say "no series": leave it out
                    metrics.append(m)
            scopes.append(ScopeMetrics(view.scope, metrics, ""))
        self._views = views
        present = {ps.program.name for ps in snap.programs}
        for gone in [n for n in self._program_start if n not in present]:
            del self._program_start[gone]
            self._program_commit.pop(gone, None)
        self._series = series
        push.data = MetricsData([ResourceMetrics(self.resource, scopes, "")])
        push.programs = tuple(present)
        return push

    def commit(self, push: Push) -> None:
        """The push was delivered: later deltas count from it."""
        for st, value in push.commits:
            st.base, st.base_time = value, push.time_unix_ns
        for name in push.programs:
            self._program_commit[name] = push.time_unix_ns

    # ---- conversion ----
    def _new_series(self, program: str, value, now: int) -> _Series:
        start = self._program_start[program]
        return _Series(start, value, now, None, self._program_commit.get(program, start))

    @staticmethod
    def _reset(st: _Series, loaded: int, now: int) -> None:
        """The value went down: the counts started over at the program's (re)load if that came
        after the last reading, else at some moment after the last reading."""
        restart = loaded if st.seen_time < loaded <= now else st.seen_time
        st.start = restart
        st.base, st.base_time = None, restart

    def _metric(self, program: str, loaded: int, collector: MetricCollector, fam, exp, now: int,
                push: Push, series: dict) -> Metric:
        spec = collector.spec
        unit = unit_of(spec.name)
        if spec.type == "histogram":
            return self._histogram(program, loaded, collector, fam, exp, now, push, series, unit)
        if spec.type == "gauge":
            points = [NumberDataPoint(lbl.attributes, 0, now, v) for lbl, v in fam.scalars()]
            push.points += len(points)
            return Metric(spec.name, spec.help, unit, Gauge(points))
        old = self._series.get((program, spec.name), {})
        new = series[(program, spec.name)] = {}
        points = []
        delta = self.counter_temporality is DELTA
        commits = push.commits
        for lbl, v in fam.scalars():
            st = old.get(lbl)
            if st is None:
                st = self._new_series(program, v, now)
            else:
                if v < st.seen:
                    self._reset(st, loaded, now)
                st.seen, st.seen_time = v, now
            new[lbl] = st
            if delta:
                points.append(NumberDataPoint(lbl.attributes, st.base_time, now,
                                              v - st.base if st.base is not None else v))
                commits.append((st, v))
            else:
                points.append(NumberDataPoint(lbl.attributes, st.start, now, v))
        push.points += len(points)
        return Metric(spec.name, spec.help, unit,
                      Sum(points, DELTA if delta else CUMULATIVE, is_monotonic=True))

    def _histogram(self, program, loaded, collector, fam, exp, now, push, series, unit) -> Metric:
        spec = collector.spec
        delta = self.histogram_temporality is DELTA
        old = self._series.get((program, spec.name), {})
        new = series[(program, spec.name)] = {}
        points = []
        for hs in fam.histograms or ():
            cumulative = [c for _bound, c in hs.buckets]
            slots = [cumulative[0]] + [b - a for a, b in zip(cumulative, cumulative[1:])]
            total = hs.sum
            value = (slots, total)
            st = old.get(hs.labels)
            if st is None:
                st = self._new_series(program, value, now)
            else:
                if any(a < b for a, b in zip(slots, st.seen[0])):
                    self._reset(st, loaded, now)
                st.seen, st.seen_time = value, now
            new[hs.labels] = st
            start = st.start
            if delta:
                if st.base is not None:
                    slots = [a - b for a, b in zip(slots, st.base[0])]
                    if total is not None and st.base[1] is not None:
                        total = total - st.base[1]
                start = st.base_time
                push.commits.append((st, value))
            attrs = hs.labels.attributes
            count = sum(slots)
            if exp:
                e = exponential(slots, spec.buckets, spec.scale)
                points.append(ExponentialHistogramDataPoint(
                    attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, count=count,
                    sum=total, scale=0, zero_count=e.zero_count,
                    positive=Buckets(e.offset, e.counts) if e.counts else EMPTY_BUCKETS,
                    negative=EMPTY_BUCKETS, flags=0, min=None, max=None))
            else:
                x = explicit_buckets(slots, spec.buckets, spec.scale)
                points.append(HistogramDataPoint(
                    attributes=attrs, start_time_unix_nano=start, time_unix_nano=now, count=count,
                    sum=total, bucket_counts=x.counts, explicit_bounds=x.bounds, min=None, max=None))
        push.points += len(points)
        t = DELTA if delta else CUMULATIVE
        data = ExponentialHistogram(points, t) if exp else Histogram(points, t)
        return Metric(spec.name, spec.help, unit, data)

