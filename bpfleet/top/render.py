"""Drawing a View with rich, and the live loop that refreshes it in place."""
from __future__ import annotations

import time
from contextlib import nullcontext

from core.extras import require

require("control", "bpfleet top", "rich")
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bpfleet.top.interval import format_row, hist_header
from bpfleet.top.model import View, build_view, format_labels
from bpfleet.top.scrape import ScrapeError, fetch
from bpfleet.top.units import human, human_rate


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def _table(*columns: tuple[str, str]) -> Table:
    t = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold dim", pad_edge=False)
    for name, justify in columns:
        t.add_column(name, justify=justify, no_wrap=(name != "SERIES"), overflow="fold")
    return t


def render_header(view: View) -> list:
    out = []
    head = Text()
    head.append("bpfleet top", style="bold")
    head.append(f"  {view.url}  {_clock(view.time)}")
    out.append(head)
    sub = f"rates over {view.elapsed:.2f}s, scrape {human(view.fetch_seconds, 'seconds')}"
    if view.exporter_scrape_seconds is not None:
        sub += f" (exporter {human(view.exporter_scrape_seconds, 'seconds')})"
    out.append(Text(sub, style="dim"))
    if view.error:
        out.append(Text(f"scrape failed: {view.error} (retrying; showing the view from "
                        f"{_clock(view.time)})", style="bold red"))
    if view.programs:
        t = _table(("PROGRAM", "left"), ("VERSION", "left"), ("STATE", "left"),
                   ("EVENTS/s", "right"), ("NS/EVENT", "right"), ("CPU", "right"))
        for p in view.programs:
            style = {"attached": "green", "failed": "bold red"}.get(p.state, "yellow")
            t.add_row(Text(p.name), Text(p.version or "-"), Text(p.state, style=style),
                      Text(human(p.events_per_second)),
                      Text("-" if p.ns_per_event is None else f"{p.ns_per_event:,.0f}"),
                      Text("-" if p.cpu_percent is None else f"{p.cpu_percent:.2f}%"))
        out.append(t)
    for w in view.warnings:
        out.append(Text(f"! {w}", style="yellow"))
    return out


def _title(m, what: str) -> Text:
    t = Text()
    t.append(m.name, style="bold cyan")
    t.append(f"  {m.type}")
    if m.series_total != 1 or m.omitted:
        t.append(f"  {m.series_total} series")
    if m.omitted:
        t.append(f", top {m.series_total - m.omitted} {what}")
    if m.reset:
        t.append("  (reset)", style="yellow")
    return t


def render_metric(m) -> list:
    out = []
    if m.type in ("histogram", "summary"):
        out.append(_title(m, "by events"))
        for h in m.histograms:
            line = Text("  ")
            lbl = format_labels(h.labels)
            if lbl:
                line.append(lbl + "  ")
            if h.count == 0 and not h.rows:
                line.append("no observations in the interval", style="dim")
                out.append(line)
                continue
            line.append(f"{human_rate(h.rate)}  p50 {human(h.p50, m.unit)}  p99 {human(h.p99, m.unit)}"
                        f"  mean {human(h.mean, m.unit)}", style="bold")
            out.append(line)
            if h.rows:
                out.append(Text("  " + hist_header(), style="dim"))
                for r in h.rows:
                    out.append(Text("  " + format_row(r)))
        return out
    if len(m.series) == 1 and not m.series[0].labels and not m.omitted:
        # One unlabeled series: a single line.
        s = m.series[0]
        t = _title(m, "")
        t.append("  ")
        if m.type == "counter":
            t.append(human_rate(s.rate, m.unit), style="bold")
            t.append(f"  total {human(s.value, m.unit)}" + ("  (reset)" if s.reset else ""))
        else:
            t.append(human(s.value, m.unit), style="bold")
        out.append(t)
        return out
    if m.type == "counter":
        out.append(_title(m, "by rate"))
        t = _table(("RATE", "right"), ("DELTA", "right"), ("TOTAL", "right"), ("SERIES", "left"))
        for s in m.series:
            t.add_row(Text(human_rate(s.rate, m.unit)), Text(human(s.delta, m.unit)),
                      Text(human(s.value, m.unit)),
                      Text(format_labels(s.labels) + ("  (reset)" if s.reset else "")))
    else:
        out.append(_title(m, "by value"))
        t = _table(("VALUE", "right"), ("SERIES", "left"))
        for s in m.series:
            t.add_row(Text(human(s.value, m.unit)), Text(format_labels(s.labels)))
    out.append(t)
    return out


def render(view: View) -> Group:
    parts = render_header(view)
    for m in view.metrics:
        parts.append(Text(""))
        parts.extend(render_metric(m))
    if not view.metrics:
        parts.append(Text(""))
        parts.append(Text("no metrics match", style="dim"))
    return Group(*parts)


def render_waiting(url: str, interval: float, error: str | None) -> Group:
    head = Text()
    head.append("bpfleet top", style="bold")
    head.append(f"  {url}  {_clock(time.time())}")
    if error:
        return Group(head, Text(f"cannot scrape {url}: {error} (retrying every {interval:g}s)",
                                style="bold red"))
    return Group(head, Text(f"first scrape done; rates in {interval:g}s", style="dim"))


def run_live(url: str, *, interval: float, flt=None, top: int, console: Console,
             fetch_fn=fetch, sleep=time.sleep, frames: int | None = None) -> None:
    """Scrape every `interval` seconds and redraw. On a terminal the frame is redrawn in
    place (alternate screen, like top); otherwise each frame is printed after the last.
    Scrape failures never end the loop: they show in the header until a scrape works."""
    prev = view = None
    error = None
    live = Live(console=console, screen=True, auto_refresh=False, vertical_overflow="crop",
                redirect_stdout=False, redirect_stderr=False) if console.is_terminal else None
    n = 0
    with live if live is not None else nullcontext():
        while frames is None or n < frames:
            started = time.monotonic()
            try:
                cur = fetch_fn(url)
            except ScrapeError as e:
                error = str(e)
            else:
                error = None
                if prev is not None:
                    view = build_view(prev, cur, url=url, flt=flt, top=top)
                prev = cur
            if view is None:
                frame = render_waiting(url, interval, error)
            else:
                view.error = error
                frame = render(view)
            if live is not None:
                live.update(frame, refresh=True)
            elif view is not None or error:
                console.print(frame)
                console.print()
            n += 1
            if frames is None or n < frames:
                sleep(max(0.0, interval - (time.monotonic() - started)))
