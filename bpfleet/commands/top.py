"""`bpfleet top`: a live terminal view of one exporter, for people without Grafana."""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

from bpfleet.commands.args import positive_count, positive_number
from bpfleet.top.model import DEFAULT_TOP
from bpfleet.top.scrape import DEFAULT_URL

EXIT_UNREACHABLE = 2


def _regex(s: str) -> re.Pattern:
    try:
        return re.compile(s)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"bad regular expression {s!r}: {e}") from None


def _url(s: str) -> str:
    from bpfleet.top.scrape import metrics_url
    try:
        return metrics_url(s)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad URL {s!r}: {e}") from None


def add_parser(sub, registry_arg=None) -> None:
    p = sub.add_parser(
        "top", help="live terminal view of an exporter's metrics",
        description="Scrape an exporter's /metrics every INTERVAL seconds and show it in place: "
        "counters as rates (top N series), gauges as values, histograms as bcc-style bars of the "
        "interval's observations with p50/p99, and a header with each program's state, version and "
        "kernel cost per run. The bpfleet_ self-metrics feed the header; --filter can list them too.")
    p.add_argument("--url", type=_url, default=DEFAULT_URL,
                   help="exporter to watch, HOST:PORT or a URL (/metrics is added when the URL has "
                   "no path; default %(default)s)")
    p.add_argument("--interval", type=positive_number, default=2.0, metavar="SECONDS",
                   help="seconds between scrapes; rates are over this interval (default %(default)s)")
    p.add_argument("--filter", type=_regex, metavar="REGEX",
                   help="only metrics whose name matches (re.search); default: all but bpfleet_*")
    p.add_argument("--top", type=positive_count, default=DEFAULT_TOP, metavar="N",
                   help="series per metric, highest rate first (default %(default)s)")
    p.add_argument("--once", action="store_true",
                   help="scrape twice INTERVAL apart, print one frame and exit")
    p.add_argument("--json", action="store_true", help="with --once: print the view as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    from bpfleet.top.model import build_view
    from bpfleet.top.scrape import ScrapeError, fetch

    if args.json and not args.once:
        print("bpfleet top: --json needs --once", file=sys.stderr)
        return 2
    url = args.url          # normalized by _url (argparse applies type to the default too)
    timeout = max(5.0, args.interval)
    if args.once:
        try:
            first = fetch(url, timeout)
            time.sleep(args.interval)
            second = fetch(url, timeout)
        except ScrapeError as e:
            print(f"bpfleet top: cannot scrape {url}: {e}", file=sys.stderr)
            return EXIT_UNREACHABLE
        view = build_view(first, second, url=url, flt=args.filter, top=args.top)
        if args.json:
            print(json.dumps(view.to_dict(), indent=2))
        else:
            from rich.console import Console
            from bpfleet.top.render import render
            Console().print(render(view))
        return 0

    from rich.console import Console
    from bpfleet.top.render import run_live
    try:
        run_live(url, interval=args.interval, flt=args.filter, top=args.top, console=Console(),
                 fetch_fn=lambda u: fetch(u, timeout))
    except KeyboardInterrupt:
        pass
    return 0
