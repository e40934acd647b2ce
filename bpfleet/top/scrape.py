"""Fetching and parsing one scrape of an exporter's /metrics."""
from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from core.extras import require

DEFAULT_URL = "http://127.0.0.1:9436"
USER_AGENT = "bpfleet-top"

LabelKey = tuple  # sorted ((name, value), ...)


class ScrapeError(Exception):
    """The exporter could not be scraped; str() is a one-line reason."""


@dataclass
class Hist:
    """One label set of a histogram (or summary): cumulative buckets sorted by le."""
    buckets: list = field(default_factory=list)      # [(le, cumulative count)], le may be inf
    count: float | None = None
    sum: float | None = None
    quantiles: dict = field(default_factory=dict)    # summaries: {0.5: value}


@dataclass
class Family:
    name: str          # as the exposition spells its samples: syscalls_total, bio_latency_seconds
    type: str          # counter, gauge, histogram, summary, untyped, ...
    help: str = ""
    series: dict = field(default_factory=dict)   # LabelKey -> value   (counter, gauge, untyped)
    hists: dict = field(default_factory=dict)    # LabelKey -> Hist     (histogram, summary)


@dataclass
class Scrape:
    families: dict                 # name -> Family, in exposition order
    mono: float = 0.0              # time.monotonic() at the middle of the request
    wall: float = 0.0              # time.time() likewise
    fetch_seconds: float = 0.0     # how long the HTTP request took


def label_key(labels: dict) -> LabelKey:
    """A series' identity: its labels, sorted, without a histogram's le or a summary's quantile."""
    return tuple(sorted((k, v) for k, v in labels.items() if k not in ("le", "quantile")))


def _float_le(s: str) -> float:
    return float("inf") if s in ("+Inf", "Inf", "inf") else float(s)


def parse(text: str, mono: float = 0.0, wall: float = 0.0, fetch_seconds: float = 0.0) -> Scrape:
    """Prometheus text exposition -> Scrape. ScrapeError if it is not that format."""
    # Here, not at the top: `bpfleet top`'s arguments are part of every host's CLI (`bpfleet
    # exporter`), and a host need not have prometheus_client.
    require("control", "bpfleet top", "prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families
    fams: dict[str, Family] = {}
    try:
        for f in text_string_to_metric_families(text):
            if f.type in ("histogram", "summary", "gaugehistogram"):
                fam = Family(f.name, "histogram" if f.type == "gaugehistogram" else f.type, f.documentation)
                for s in f.samples:
                    h = fam.hists.setdefault(label_key(s.labels), Hist())
                    suffix = s.name[len(f.name):]
                    if suffix == "_bucket" and "le" in s.labels:
                        h.buckets.append((_float_le(s.labels["le"]), s.value))
                    elif suffix in ("_count", "_gcount"):
                        h.count = s.value
                    elif suffix in ("_sum", "_gsum"):
                        h.sum = s.value
                    elif suffix == "" and "quantile" in s.labels:
                        h.quantiles[float(s.labels["quantile"])] = s.value
                for h in fam.hists.values():
                    h.buckets.sort(key=lambda b: b[0])
                    if h.count is None and h.buckets:
                        h.count = h.buckets[-1][1]
                fams[fam.name] = fam
                continue
            # Counters: the parser strips _total from the family name; show what the
            # exposition says (syscalls_total). Skip OpenMetrics _created samples.
            names = {s.name for s in f.samples}
            name = f.name + "_total" if (f.type == "counter" and f.name not in names) else f.name
            fam = Family(name, f.type, f.documentation)
            for s in f.samples:
                if s.name == name or (f.type != "counter" and s.name == f.name):
                    fam.series[label_key(s.labels)] = s.value
            if name in fams:          # same name twice: merge rather than lose series
                fams[name].series.update(fam.series)
            else:
                fams[name] = fam
    except ScrapeError:
        raise
    except Exception as e:  # the parser raises ValueError, IndexError, ... on garbage
        raise ScrapeError(f"response is not Prometheus text format ({type(e).__name__}: {e})") from None
    return Scrape(fams, mono, wall, fetch_seconds)


def metrics_url(url: str) -> str:
    """"host:9436" -> "http://host:9436/metrics"; a URL with a path other than / is kept.
    ValueError if it is not an http(s) URL."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    parts = urllib.parse.urlsplit(url)      # ValueError on a malformed URL
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise ValueError("no host")
    parts.port                              # ValueError on a bad port
    if parts.path in ("", "/"):
        parts = parts._replace(path="/metrics")
    return urllib.parse.urlunsplit(parts)


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        e = e.reason if isinstance(e.reason, BaseException) else e
        if not isinstance(e, BaseException):
            return str(e)
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host ({e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__


def fetch(url: str, timeout: float = 5.0) -> Scrape:
    """GET url (already a metrics URL) and parse it. ScrapeError with a one-line reason."""
    req = urllib.request.Request(url, headers={"Accept": "text/plain;version=0.0.4", "User-Agent": USER_AGENT})
    t0, w0 = time.monotonic(), time.time()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise ScrapeError(_reason(e)) from None
    t1 = time.monotonic()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ScrapeError("response is not UTF-8 text") from None
    return parse(text, mono=(t0 + t1) / 2, wall=w0 + (t1 - t0) / 2, fetch_seconds=t1 - t0)
