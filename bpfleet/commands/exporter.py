"""`bpfleet exporter`: argument parsing for the per-host daemon."""
from __future__ import annotations


def add_parser(sub, registry_arg) -> None:
    p = sub.add_parser("exporter", help="run the per-host exporter",
                       description="Load the enabled programs and serve their maps on /metrics.")
    p.add_argument("--config", help="exporter config (TOML); default: every built-in program")
    p.add_argument("--listen", help="HOST:PORT to serve on (default 127.0.0.1:9436)")
    p.add_argument("--check", action="store_true",
                   help="load, attach, report and exit; non-zero if anything failed (for CI)")
    p.add_argument("--strict", action="store_true", help="a program that fails to load is fatal")
    registry_arg(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from exporter.daemon.process import run_exporter
    return run_exporter(args)
