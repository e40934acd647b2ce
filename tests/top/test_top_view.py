"""`bpfleet top`'s view model on synthetic exposition text: rates, counter resets, histogram
bucket deltas and bcc-style bars, quantiles, units, label escaping, the programs header."""
from __future__ import annotations

import json
import math

import pytest
from rich.console import Console

from bpfleet.top.interval import BucketRow, bar, bucket_rows, counter_delta, format_row, hist_header, quantile
from bpfleet.top.model import build_view, format_labels
from bpfleet.top.render import render
from bpfleet.top.scrape import ScrapeError, metrics_url, parse
from bpfleet.top.units import human, human_rate, unit_of

INF = float("inf")
LES = ["0.0", "1e-06", "2e-06", "4e-06", "8e-06", "1.6e-05", "+Inf"]


def hist_text(name: str, cumulative: list, labels: str = "", total_sum: float = 0.0,
              les: list = LES) -> str:
    """A histogram family with cumulative bucket counts (one per le)."""
    sep = "," if labels else ""
    lines = [f"# HELP {name} test histogram", f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{{labels}{sep}le="{le}"}} {c}' for le, c in zip(les, cumulative)]
    lb = f"{{{labels}}}" if labels else ""
    lines += [f"{name}_sum{lb} {total_sum}", f"{name}_count{lb} {cumulative[-1]}"]
    return "\n".join(lines) + "\n"


def counter_text(name: str, series: dict) -> str:
    lines = [f"# HELP {name} test counter", f"# TYPE {name} counter"]
    lines += [f"{name}{lb} {v}" for lb, v in series.items()]
    return "\n".join(lines) + "\n"


def view(a: str, b: str, elapsed: float = 2.0, **kw):
    return build_view(parse(a), parse(b), elapsed=elapsed, url="http://test/metrics", **kw)


def metric(v, name):
    return next(m for m in v.metrics if m.name == name)


def text_of(v, width: int = 120) -> str:
    c = Console(record=True, width=width, force_terminal=False, color_system=None)
    c.print(render(v))
    return c.export_text()


# ---------------------------------------------------------------- counters

def test_counter_rates_sorted_and_top_n():
    a = counter_text("syscalls_total", {'{syscall="read"}': 100, '{syscall="getppid"}': 10,
                                        '{syscall="futex"}': 50})
    b = counter_text("syscalls_total", {'{syscall="read"}': 300, '{syscall="getppid"}': 2010,
                                        '{syscall="futex"}': 51})
    v = view(a, b, elapsed=2.0, top=2)
    m = metric(v, "syscalls_total")
    assert (m.type, m.series_total, m.omitted) == ("counter", 3, 1)
    assert [(s.labels["syscall"], s.delta, s.rate) for s in m.series] == [
        ("getppid", 2000, 1000.0), ("read", 200, 100.0)]
    assert not m.reset and not any(s.reset for s in m.series)
    out = text_of(v)
    assert "syscalls_total  counter  3 series, top 2 by rate" in out
    assert '1k/s' in out and '{syscall="getppid"}' in out
    assert "futex" not in out


def test_counter_reset_is_a_restart():
    assert counter_delta(500, 20) == (20, True)
    assert counter_delta(None, 7) == (7, False)      # a new series counts from 0
    assert counter_delta(5, 5) == (0, False)
    a = counter_text("exec_total", {'{comm="a"}': 500, '{comm="b"}': 10})
    b = counter_text("exec_total", {'{comm="a"}': 20, '{comm="b"}': 12, '{comm="c"}': 4})
    v = view(a, b, elapsed=4.0)
    m = metric(v, "exec_total")
    by = {s.labels["comm"]: s for s in m.series}
    assert (by["a"].delta, by["a"].rate, by["a"].reset) == (20, 5.0, True)
    assert (by["b"].delta, by["b"].reset) == (2, False)
    assert (by["c"].delta, by["c"].rate, by["c"].reset) == (4, 1.0, False)
    assert m.reset
    assert any("exec_total" in w and "restarted" in w for w in v.warnings)
    assert "(reset)" in text_of(v)


def test_unlabeled_counter_is_one_line():
    v = view(counter_text("oom_kills_total", {"": 3}), counter_text("oom_kills_total", {"": 5}))
    m = metric(v, "oom_kills_total")
    assert len(m.series) == 1 and m.series[0].rate == 1.0
    assert "oom_kills_total  counter  1/s  total 5" in text_of(v)


def test_gauges_show_values():
    g = "# TYPE queue_depth gauge\nqueue_depth{q=\"a\"} 3\nqueue_depth{q=\"b\"} 9\n"
    v = view(g, g)
    m = metric(v, "queue_depth")
    assert [(s.labels["q"], s.value, s.rate) for s in m.series] == [("b", 9, None), ("a", 3, None)]


def test_bytes_counter_rate_in_bytes():
    v = view(counter_text("bio_bytes_total", {"": 0}), counter_text("bio_bytes_total", {"": 8 << 20}),
             elapsed=2.0)
    assert metric(v, "bio_bytes_total").unit == "bytes"
    assert "4MiB/s" in text_of(v)


# ---------------------------------------------------------------- histograms

def test_histogram_bucket_deltas_and_bars():
    # cumulative per le: 0, 1µs, 2µs, 4µs, 8µs, 16µs, +Inf
    a = hist_text("runq_latency_seconds", [0, 10, 20, 30, 30, 30, 30], total_sum=0.0001)
    b = hist_text("runq_latency_seconds", [0, 10, 30, 110, 140, 143, 143], total_sum=0.0004)
    v = view(a, b, elapsed=2.0)
    m = metric(v, "runq_latency_seconds")
    assert (m.type, m.unit, m.series_total) == ("histogram", "seconds", 1)
    h = m.histograms[0]
    assert (h.count, h.rate, h.reset) == (113, 56.5, False)
    assert h.mean == pytest.approx(0.0003 / 113)
    # The 0 -> 1µs bucket had nothing in the interval: rows start at the first bucket with
    # observations and stop at the last one (the +Inf bucket got nothing).
    assert [(r.range, r.count, len(r.bar)) for r in h.rows] == [
        ("1µs -> 2µs", 10, 5),      # int(10 * 40 / 70) = int(5.7): bcc truncates
        ("2µs -> 4µs", 70, 40),     # the fullest bucket gets the whole width
        ("4µs -> 8µs", 30, 17),
        ("8µs -> 16µs", 3, 1),
    ]
    assert all(set(r.bar) <= {"*"} for r in h.rows)
    # p50: rank 56.5 falls in (2µs, 4µs], which holds 70 after 10 below it
    assert h.p50 == pytest.approx(2e-6 + 2e-6 * 46.5 / 70)
    assert h.p99 == pytest.approx(8e-6 + 8e-6 * (0.99 * 113 - 110) / 3)
    out = text_of(v)
    assert "range" in out and "count" in out and "distribution" in out
    assert "       2µs -> 4µs        : 70       |****************************************|" in out
    assert "       8µs -> 16µs       : 3        |*                                       |" in out


def test_histogram_zero_bucket_and_inf_rows():
    b = hist_text("lat_seconds", [2, 2, 2, 2, 2, 2, 5])
    h = metric(view(hist_text("lat_seconds", [0] * 7), b), "lat_seconds").histograms[0]
    assert [r.range for r in h.rows][0] == "0"
    assert h.rows[-1].range == "16µs -> +Inf" and h.rows[-1].upper == INF
    assert quantile(0.99, [(0.0, 2), (1.6e-05, 2), (INF, 5)]) == 1.6e-05   # highest finite bound
    assert quantile(0.1, [(0.0, 2), (1.6e-05, 2), (INF, 5)]) == 0.0
    assert format_row(h.rows[0]).startswith("         0               : 2 ")
    # JSON-safe: no bare Infinity
    json.dumps(view(hist_text("lat_seconds", [0] * 7), b).to_dict(), allow_nan=False)


def test_histogram_without_observations_has_no_rows():
    a = hist_text("lat_seconds", [0, 1, 2, 3, 3, 3, 3])
    h = metric(view(a, a), "lat_seconds").histograms[0]
    assert (h.count, h.rows, h.p50, h.p99, h.mean) == (0, [], None, None, None)
    assert "no observations in the interval" in text_of(view(a, a))


def test_histogram_reset_uses_current_counts():
    a = hist_text("lat_seconds", [0, 100, 200, 300, 300, 300, 300])
    b = hist_text("lat_seconds", [0, 1, 4, 4, 4, 4, 4])
    m = metric(view(a, b), "lat_seconds")
    h = m.histograms[0]
    assert h.reset and m.reset and h.count == 4
    assert [(r.range, r.count) for r in h.rows] == [("0 -> 1µs", 1), ("1µs -> 2µs", 3)]


def test_histogram_layout_change_is_a_reset():
    a = hist_text("lat_seconds", [0, 1, 2, 3, 3, 3, 3])
    b = hist_text("lat_seconds", [0, 5, 9], les=["0.0", "1e-06", "+Inf"])
    h = metric(view(a, b), "lat_seconds").histograms[0]
    assert h.reset and h.count == 9


def test_histogram_label_sets_sorted_by_events():
    a = hist_text("bio_latency_seconds", [0] * 7, 'disk="vda",op="read"') + \
        "\n".join(hist_text("bio_latency_seconds", [0] * 7, 'disk="vda",op="write"').splitlines()[2:]) + "\n"
    b = hist_text("bio_latency_seconds", [0, 0, 1, 1, 1, 1, 1], 'disk="vda",op="read"') + \
        "\n".join(hist_text("bio_latency_seconds", [0, 0, 0, 7, 9, 9, 9], 'disk="vda",op="write"').splitlines()[2:]) + "\n"
    m = metric(view(a, b, top=1), "bio_latency_seconds")
    assert m.series_total == 2 and m.omitted == 1
    assert m.histograms[0].labels == {"disk": "vda", "op": "write"} and m.histograms[0].count == 9


def test_bar_scaling_like_bcc():
    assert bar(0, 10) == "" and bar(5, 0) == ""
    assert bar(10, 10) == "*" * 40
    assert bar(1, 3) == "*" * 13
    assert bar(1, 41) == ""                # less than one star's worth: none, as bcc prints
    assert len(bar(7, 10, width=20)) == 14


def test_bucket_rows_byte_and_plain_units():
    rows = bucket_rows([(1024.0, 0), (4096.0, 3), (16384.0, 4), (INF, 4)], "bytes")
    assert [r.range for r in rows] == ["1KiB -> 4KiB", "4KiB -> 16KiB"]
    rows = bucket_rows([(10.0, 1), (100.0, 1), (1000.0, 2), (INF, 2)], "")
    assert [r.range for r in rows] == ["0 -> 10", "10 -> 100", "100 -> 1k"]
    assert [r.count for r in rows] == [1, 0, 1]


# ---------------------------------------------------------------- units

@pytest.mark.parametrize("v, unit, text", [
    (0, "seconds", "0"), (5e-10, "seconds", "0.5ns"), (1e-9, "seconds", "1ns"),
    (1.5e-7, "seconds", "150ns"), (1e-06, "seconds", "1µs"), (1.6e-05, "seconds", "16µs"),
    (0.000128, "seconds", "128µs"), (0.000512, "seconds", "512µs"), (0.0009996, "seconds", "1ms"),
    (0.001024, "seconds", "1.02ms"), (0.004096, "seconds", "4.1ms"), (0.131072, "seconds", "131ms"),
    (16.777216, "seconds", "16.8s"), (INF, "seconds", "+Inf"),
    (512, "bytes", "512B"), (4096, "bytes", "4KiB"), (1536, "bytes", "1.5KiB"), (23027712, "bytes", "22MiB"),
    (3 << 30, "bytes", "3GiB"),
    (0.5, "", "0.5"), (999, "", "999"), (999.7, "", "1k"), (12345, "", "12.3k"), (2.5e6, "", "2.5M"),
    (None, "", "-"), (math.nan, "", "-"),
])
def test_human(v, unit, text):
    assert human(v, unit) == text


def test_units_from_names():
    assert unit_of("bio_latency_seconds") == "seconds"
    assert unit_of("bpfleet_program_run_time_seconds_total") == "seconds"
    assert unit_of("bio_bytes_total") == "bytes"
    assert unit_of("syscalls_total") == ""
    assert human_rate(2048, "bytes") == "2KiB/s" and human_rate(None) == "-"


# ---------------------------------------------------------------- labels

def test_label_escaping_survives():
    raw = 'we"ird \\ [bold]name\nline2'
    esc = 'we\\"ird \\\\ [bold]name\\nline2'
    a = counter_text("exec_total", {f'{{comm="{esc}"}}': 1})
    b = counter_text("exec_total", {f'{{comm="{esc}"}}': 3})
    v = view(a, b)
    s = metric(v, "exec_total").series[0]
    assert s.labels == {"comm": raw} and s.delta == 2
    assert format_labels(s.labels) == f'{{comm="{esc}"}}'
    # rich markup in a label value is printed, not interpreted; the newline stays escaped
    assert f'{{comm="{esc}"}}' in text_of(v, width=200)
    # and JSON carries the raw value
    assert json.loads(json.dumps(v.to_dict()))["metrics"][0]["series"][0]["labels"]["comm"] == raw


def test_histogram_labels_escaped_in_title():
    esc = 'a\\"b'
    h = hist_text("lat_seconds", [0, 1, 1, 1, 1, 1, 1], f'dev="{esc}"')
    v = view(hist_text("lat_seconds", [0] * 7, f'dev="{esc}"'), h)
    assert metric(v, "lat_seconds").histograms[0].labels == {"dev": 'a"b'}
    assert f'{{dev="{esc}"}}' in text_of(v)


# ---------------------------------------------------------------- header, filter, errors

SELF_A = """# TYPE bpfleet_program_info gauge
bpfleet_program_info{program="syscalls",version="1.0.0",digest="aa"} 1
bpfleet_program_info{program="runqlat",version="1.2.0",digest="bb"} 1
# TYPE bpfleet_program_attached gauge
bpfleet_program_attached{program="syscalls"} 1
bpfleet_program_attached{program="runqlat"} 1
bpfleet_program_attached{program="lsmprog"} 0
# TYPE bpfleet_program_load_errors_total counter
bpfleet_program_load_errors_total{program="syscalls"} 0
bpfleet_program_load_errors_total{program="runqlat"} 0
bpfleet_program_load_errors_total{program="lsmprog"} 1
# TYPE bpfleet_program_run_time_seconds_total counter
bpfleet_program_run_time_seconds_total{program="syscalls",bpf_program="sys_enter"} 1.0
bpfleet_program_run_time_seconds_total{program="runqlat",bpf_program="sched_wakeup"} 0.5
bpfleet_program_run_time_seconds_total{program="runqlat",bpf_program="sched_switch"} 0.5
# TYPE bpfleet_program_run_count_total counter
bpfleet_program_run_count_total{program="syscalls",bpf_program="sys_enter"} 1000000
bpfleet_program_run_count_total{program="runqlat",bpf_program="sched_wakeup"} 1000
bpfleet_program_run_count_total{program="runqlat",bpf_program="sched_switch"} 1000
# TYPE bpfleet_ringbuf_drops_total counter
bpfleet_ringbuf_drops_total{program="exec",map="events"} 0
"""
SELF_B = (SELF_A
          .replace('sys_enter"} 1.0', 'sys_enter"} 1.1')                  # +0.1s over 2e6 runs
          .replace('sys_enter"} 1000000', 'sys_enter"} 3000000')
          .replace('sched_wakeup"} 0.5', 'sched_wakeup"} 0.5001')          # +300µs over 300 runs
          .replace('sched_switch"} 0.5', 'sched_switch"} 0.5002')
          .replace('sched_wakeup"} 1000', 'sched_wakeup"} 1100')
          .replace('sched_switch"} 1000', 'sched_switch"} 1200')
          .replace('lsmprog"} 1\n', 'lsmprog"} 2\n')
          .replace('map="events"} 0', 'map="events"} 17')
          + "# TYPE bpfleet_scrape_duration_seconds gauge\nbpfleet_scrape_duration_seconds 0.0031\n")


def test_programs_header_from_self_metrics():
    v = view(SELF_A, SELF_B, elapsed=2.0)
    p = {x.name: x for x in v.programs}
    assert list(p) == ["syscalls", "runqlat", "lsmprog"]
    assert (p["syscalls"].version, p["syscalls"].state) == ("1.0.0", "attached")
    assert p["syscalls"].ns_per_event == pytest.approx(50.0)
    assert p["syscalls"].events_per_second == pytest.approx(1e6)
    assert p["syscalls"].cpu_percent == pytest.approx(5.0)
    assert p["runqlat"].ns_per_event == pytest.approx(1000.0)
    assert (p["lsmprog"].state, p["lsmprog"].version, p["lsmprog"].ns_per_event) == ("failed", None, None)
    assert v.exporter_scrape_seconds == pytest.approx(0.0031)
    assert any("exec/events dropped 17" in w for w in v.warnings)
    assert any("lsmprog: 1 new load/attach errors" in w for w in v.warnings)
    out = text_of(v)
    for needle in ("PROGRAM", "NS/EVENT", "syscalls", "1.0.0", "attached", "failed", "exporter 3.1ms"):
        assert needle in out
    assert v.metrics == []          # self-metrics only in the header by default


def test_filter():
    both = counter_text("syscalls_total", {'{syscall="read"}': 1}) + SELF_A
    assert [m.name for m in view(both, both).metrics] == ["syscalls_total"]
    names = [m.name for m in view(both, both, flt="run_count|syscalls").metrics]
    assert names == ["syscalls_total", "bpfleet_program_run_count_total"]
    assert view(both, both, flt="^nothing$").metrics == []
    assert "no metrics match" in text_of(view(both, both, flt="^nothing$"))


def test_garbage_is_a_scrape_error():
    with pytest.raises(ScrapeError, match="not Prometheus text"):
        parse("<html>this is not it</html>\n")


@pytest.mark.parametrize("given, url", [
    ("127.0.0.1:9436", "http://127.0.0.1:9436/metrics"),
    ("http://host:9436", "http://host:9436/metrics"),
    ("http://host:9436/", "http://host:9436/metrics"),
    ("https://host/custom/path", "https://host/custom/path"),
])
def test_metrics_url(given, url):
    assert metrics_url(given) == url


@pytest.mark.parametrize("bad", ["ftp://host", "http://[::1", "http://h:99999", "https://"])
def test_metrics_url_refuses(bad):
    with pytest.raises(ValueError):
        metrics_url(bad)


def test_format_row_is_bcc_shaped():
    line = format_row(BucketRow(1e-6, 2e-6, "1µs -> 2µs", 125, "*" * 8))
    assert line == "       1µs -> 2µs        : 125      |********" + " " * 32 + "|"
    assert hist_header().endswith(": count     distribution")
