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


def parser() -> argparse.ArgumentParser:
    from bpfleet.commands import dashboards, programs
    from bpfleet.commands import top
    from bpfleet.commands import lab
    from bpfleet.commands import fleet, mitigate
    from bpfleet.commands import exporter as exporter_main

    p = argparse.ArgumentParser(
        prog="bpfleet",
        description="Fleet-wide eBPF observability exporter and kernel hotpatch orchestrator.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    programs.add_parser(sub, registry_arg)
    dashboards.add_parser(sub, registry_arg)
    exporter_main.add_parser(sub, registry_arg)
    top.add_parser(sub, registry_arg)
    lab.add_parser(sub, registry_arg)
    fleet.add_parser(sub, registry_arg)
    mitigate.add_parser(sub, registry_arg)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except MissingExtra as e:        # a feature whose optional dependencies aren't installed
        print(f"bpfleet: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
