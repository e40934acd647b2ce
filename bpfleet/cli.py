"""The `bpfleet` command: one entry point, a subcommand per job."""
from __future__ import annotations

import argparse
import os
import sys

from core.extras import MissingExtra

DEFAULT_REGISTRY = "/var/lib/bpfleet/registry"


def registry_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--registry", default=os.environ.get("BPFLEET_REGISTRY", DEFAULT_REGISTRY),
                   help="program registry directory (default: $BPFLEET_REGISTRY or %(default)s)")


def parser(only_exporter: bool = False) -> argparse.ArgumentParser:
    """The whole CLI; with only_exporter, just `bpfleet exporter`: the long-running daemon then
    does not import what the other commands need to build their parsers (the orchestrator's
    SQLite journal, prometheus_client, the dashboard generator: ~4 MB of RSS kept for the
    daemon's life, bench/bench_rss.py)."""
    from bpfleet.commands import exporter as exporter_main

    p = argparse.ArgumentParser(
        prog="bpfleet",
        description="Fleet-wide eBPF observability exporter and kernel hotpatch orchestrator.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only_exporter:
        exporter_main.add_parser(sub, registry_arg)
        return p
    from bpfleet.commands import dashboards, programs
    from bpfleet.commands import top
    from bpfleet.commands import lab
    from bpfleet.commands import fleet, mitigate
    programs.add_parser(sub, registry_arg)
    dashboards.add_parser(sub, registry_arg)
    exporter_main.add_parser(sub, registry_arg)
    top.add_parser(sub, registry_arg)
    lab.add_parser(sub, registry_arg)
    fleet.add_parser(sub, registry_arg)
    mitigate.add_parser(sub, registry_arg)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser(only_exporter=argv[:1] == ["exporter"]).parse_args(argv)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except MissingExtra as e:        # a feature whose optional dependencies aren't installed
        print(f"bpfleet: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
