"""The view model of `bpfleet top`: two scrapes and the time between them -> what to show.

Everything here is pure (no I/O, no clock): counters become rates, histograms become the
bucket deltas of the interval drawn as bcc-style rows, the bpfleet_ self-metrics become a
header (programs, their state and kernel cost per event) and warnings.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from bpfleet.top.interval import bucket_rows, counter_delta, hist_delta, quantile
from bpfleet.top.scrape import Family, Scrape
from bpfleet.top.units import count_text, unit_of

DEFAULT_TOP = 10
SELF_PREFIX = "bpfleet_"     # self-metrics: summarized in the header, listed only when --filter asks
INF = float("inf")


# ------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------

@dataclass
class SeriesView:
    labels: dict
    value: float                   # the value in the second scrape
    rate: float | None = None      # counters: per second over the interval
    delta: float | None = None     # counters: increase over the interval
    reset: bool = False            # the counter went down: its source restarted from 0


@dataclass
class HistView:
    labels: dict
    count: float                   # observations in the interval
    rate: float | None             # per second
    mean: float | None
    p50: float | None              # estimated from the interval's buckets (as histogram_quantile does)
    p99: float | None
    reset: bool = False
    rows: list = field(default_factory=list)   # interval.BucketRow, first to last non-empty bucket


@dataclass
class MetricView:
    name: str
    type: str
    help: str
    unit: str                      # "seconds", "bytes" or "" (from the name)
    series_total: int              # series (label sets) in the scrape
    omitted: int                   # not shown (beyond --top)
    reset: bool = False            # some series went down between the scrapes (restart)
    series: list = field(default_factory=list)       # SeriesView: counters, gauges, untyped
    histograms: list = field(default_factory=list)   # HistView: histograms, summaries


@dataclass
class ProgramView:
    name: str
    version: str | None
    state: str                     # attached, failed, unknown
    load_errors: float | None
    events_per_second: float | None    # BPF program runs per second (bpf_stats)
    ns_per_event: float | None         # kernel time per run
    cpu_percent: float | None          # kernel time per second, % of one CPU


@dataclass
class View:
    url: str
    time: float                    # wall clock of the second scrape
    elapsed: float                 # seconds between the two scrapes
    fetch_seconds: float           # how long fetching the second scrape took
    exporter_scrape_seconds: float | None   # bpfleet_scrape_duration_seconds: the exporter's own
    programs: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    metrics: list = field(default_factory=list)
    error: str | None = None       # live mode: the latest scrape failed (this view is older)

    def to_dict(self) -> dict:
        """JSON-safe: infinities as "+Inf"/"-Inf", NaN as null."""
        return _json_safe(dataclasses.asdict(self))


def _json_safe(x):
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "+Inf" if x > 0 else "-Inf"
        return x
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


# ------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------

def escape_label_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def format_labels(labels: dict) -> str:
    """{syscall="getppid"} as the exposition writes it (escaped), "" for no labels."""
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in labels.items()) + "}"


# ------------------------------------------------------------------------------------------
# Building the view
# ------------------------------------------------------------------------------------------

def _sort_value(v: float | None) -> float:
    return -INF if v is None or math.isnan(v) else v


def metric_view(prev: Family | None, cur: Family, elapsed: float, top: int) -> MetricView:
    unit = unit_of(cur.name)
    per_s = (lambda d: d / elapsed) if elapsed > 0 else (lambda d: None)
    mv = MetricView(cur.name, cur.type, cur.help, unit,
                    series_total=len(cur.hists) if cur.hists else len(cur.series), omitted=0)
    if cur.type in ("histogram", "summary"):
        hs = []
        for key, h in cur.hists.items():
            buckets, dcount, dsum, reset = hist_delta(prev.hists.get(key) if prev else None, h)
            if buckets:
                p50, p99 = quantile(0.5, buckets), quantile(0.99, buckets)
            else:   # a summary: the exporter's own quantiles
                p50, p99 = h.quantiles.get(0.5), h.quantiles.get(0.99)
            hs.append(HistView(dict(key), dcount, per_s(dcount),
                               dsum / dcount if dsum is not None and dcount > 0 else None,
                               p50, p99, reset, bucket_rows(buckets, unit)))
        hs.sort(key=lambda v: (-v.count, format_labels(v.labels)))
        mv.reset = any(h.reset for h in hs)
        mv.histograms, mv.omitted = hs[:top], max(len(hs) - top, 0)
        return mv
    ss = []
    for key, value in cur.series.items():
        s = SeriesView(dict(key), value)
        if cur.type == "counter":
            s.delta, s.reset = counter_delta(prev.series.get(key) if prev else None, value)
            s.rate = per_s(s.delta)
        ss.append(s)
    ss.sort(key=lambda s: (-_sort_value(s.rate), -_sort_value(s.value), format_labels(s.labels)))
    mv.reset = any(s.reset for s in ss)
    mv.series, mv.omitted = ss[:top], max(len(ss) - top, 0)
    return mv


def _by_program(fam: Family | None) -> dict:
    """{program: [(key, value)]} of a self-metric family's series."""
    out: dict = {}
    for key, v in (fam.series.items() if fam else ()):
        out.setdefault(dict(key).get("program"), []).append((key, v))
    return out


def _family_delta(prev: Family | None, cur: Family | None, program: str) -> float:
    total = 0.0
    for key, v in _by_program(cur).get(program, []):
        d, _ = counter_delta(prev.series.get(key) if prev else None, v)
        total += d
    return total


def program_views(prev: Scrape, cur: Scrape, elapsed: float) -> list[ProgramView]:
    F, P = cur.families, prev.families
    attached, info = _by_program(F.get("bpfleet_program_attached")), _by_program(F.get("bpfleet_program_info"))
    errors = _by_program(F.get("bpfleet_program_load_errors_total"))
    rt, rc = "bpfleet_program_run_time_seconds_total", "bpfleet_program_run_count_total"
    names = list(dict.fromkeys(n for fam in (attached, info, _by_program(F.get(rt))) for n in fam if n))
    out = []
    for name in names:
        version = dict(info[name][0][0]).get("version") if name in info else None
        att = attached[name][0][1] if name in attached else None
        state = "unknown" if att is None else ("attached" if att >= 1 else "failed")
        runs = _family_delta(P.get(rc), F.get(rc), name)
        secs = _family_delta(P.get(rt), F.get(rt), name)
        out.append(ProgramView(
            name, version, state,
            load_errors=sum(v for _, v in errors[name]) if name in errors else None,
            events_per_second=runs / elapsed if elapsed > 0 else None,
            ns_per_event=secs / runs * 1e9 if runs > 0 else None,
            cpu_percent=secs / elapsed * 100 if elapsed > 0 else None))
    return out


def warning_lines(prev: Scrape, cur: Scrape, resets: list[str]) -> list[str]:
    F, P = cur.families, prev.families
    out = []
    for metric, what in (("bpfleet_ringbuf_drops_total", "ring buffer {program}/{map} dropped {n} events"),
                         ("bpfleet_read_errors_total", "{program}: maps could not be read ({n} snapshots)"),
                         ("bpfleet_program_load_errors_total", "{program}: {n} new load/attach errors")):
        fam, pfam = F.get(metric), P.get(metric)
        for key, v in (fam.series.items() if fam else ()):
            if pfam is None:
                continue   # no baseline: only report what happened in the interval
            d, _ = counter_delta(pfam.series.get(key, 0.0), v)
            if d > 0:
                lb = dict(key)
                out.append(what.format(program=lb.get("program"), map=lb.get("map"), n=count_text(d)))
    if resets:
        out.append("counters went down (exporter or program restarted; counted from 0): " + ", ".join(resets))
    return out


def compile_filter(pattern: str | None):
    return re.compile(pattern) if pattern else None


def wanted(name: str, flt) -> bool:
    """--filter REGEX searches metric names; without it, all but the bpfleet_ self-metrics."""
    return bool(flt.search(name)) if flt is not None else not name.startswith(SELF_PREFIX)


def build_view(prev: Scrape, cur: Scrape, *, url: str = "", flt=None, top: int = DEFAULT_TOP,
               elapsed: float | None = None) -> View:
    """The whole frame. elapsed defaults to the time between the two scrapes."""
    if isinstance(flt, str):
        flt = compile_filter(flt)
    if elapsed is None:
        elapsed = cur.mono - prev.mono
    metrics = []
    for name, fam in cur.families.items():
        if not (fam.series or fam.hists) or not wanted(name, flt):
            continue
        metrics.append(metric_view(prev.families.get(name), fam, elapsed, top))
    resets = [m.name for m in metrics if m.reset]
    scrape_s = cur.families.get("bpfleet_scrape_duration_seconds")
    return View(url=url, time=cur.wall, elapsed=elapsed, fetch_seconds=cur.fetch_seconds,
                exporter_scrape_seconds=next(iter(scrape_s.series.values()), None) if scrape_s else None,
                programs=program_views(prev, cur, elapsed),
                warnings=warning_lines(prev, cur, resets),
                metrics=metrics)
