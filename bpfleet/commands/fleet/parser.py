"""The arguments of the fleet verbs: `bpfleet plan|rollout|status|rollback|resume|history`
and `bpfleet fleet install` (their commands: run.py)."""
from __future__ import annotations

import argparse

from bpfleet.commands.args import count, ref, seconds, steps
from bpfleet.commands.fleet import run
from bpfleet.commands.fleet.common import default_journal


def add_parser(sub, registry_arg) -> None:
    def common(p, inventory: bool = True, json_help: str = "print JSON instead of a table"):
        if inventory:
            p.add_argument("-i", "--inventory", required=True, help="Ansible inventory")
            p.add_argument("-l", "--limit", default="all", metavar="PATTERN",
                           help="only hosts matching this Ansible host pattern (default all)")
            p.add_argument("--forks", type=count, default=10, help="parallel hosts per Ansible run "
                           "(default %(default)s)")
        p.add_argument("--journal", help="rollout journal (SQLite; default $BPFLEET_JOURNAL, "
                       f"{default_journal()})")
        p.add_argument("--json", action="store_true", help=json_help)

    p = sub.add_parser("plan", help="what a rollout would do, per host (changes nothing)",
                       description="Collect each host's kernel build, BTF and running version (facts "
                       "only), group hosts by kernel build, name the preflight host of each build and "
                       "the waves. Nothing on any host changes.")
    p.add_argument("ref", type=ref, metavar="NAME@VERSION")
    common(p)
    p.add_argument("--steps", type=steps, default=None, help="cumulative wave sizes after the canary "
                   "(default 1,10%%,50%%,100%%)")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUBKEY",
                   help="require the artifact to be signed by this ed25519 public key")
    registry_arg(p)
    p.set_defaults(run=run.run_plan)

    p = sub.add_parser("rollout", help="roll NAME@VERSION out: preflight, canary, gated waves, rollback",
                       description="Preflight (load without attaching) on one host of every kernel build, "
                       "then a canary host per build, then waves; after each wave a bake time and the gate "
                       "(attached, no errors, cost within budget, exporter healthy, host health vs baseline). "
                       "A failed gate or too many failed hosts rolls every touched host back, newest first. "
                       "Exit 0 succeeded, 1 failed, 3 rolled back, 4 needs attention (paused), 2 usage.")
    p.add_argument("ref", type=ref, metavar="NAME@VERSION")
    common(p, json_help="one JSON line per event on stdout, a result line last (for CI)")
    p.add_argument("--steps", type=steps, default=None, help="cumulative wave sizes after the canary "
                   "(default 1,10%%,50%%,100%%)")
    p.add_argument("--bake", type=seconds, default=30.0, metavar="SECONDS",
                   help="wait after each wave before judging it (default %(default)s)")
    p.add_argument("--max-failures", type=count, default=0, metavar="N",
                   help="hosts that may fail over the whole rollout; unreachable ones count (default 0)")
    p.add_argument("--incompatible", choices=("fail", "skip"), default="fail",
                   help="a kernel build that can't load the version: fail the rollout, or skip its hosts")
    p.add_argument("--budget-ns", type=float, default=None, metavar="N",
                   help="kernel ns per event the program may cost (default: the manifest's "
                   "[budget] ns_per_event, else no cost limit)")
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="knob value for the new version (integer or true/false); repeatable")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUBKEY",
                   help="require an ed25519 signature by this key: checked here before anything "
                   "starts, and by the preflight on the hosts (installed there by `fleet install`)")
    p.add_argument("--no-canary", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--verbose", action="store_true", help="with --json: Ansible task events too")
    registry_arg(p)
    p.set_defaults(run=run.run_rollout)

    p = sub.add_parser("status", help="fleet table: host, kernel, exporter, program versions, health",
                       description="Ask every host (facts only, nothing changes). Exit 0 when every "
                       "exporter answers, 1 otherwise.")
    common(p)
    p.set_defaults(run=run.run_status)

    for name, what in (("rollback", "roll a rollout back: every touched host to its previous version"),
                       ("resume", "continue an interrupted or paused rollout from the journal")):
        p = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ". Exit codes "
                           "as for rollout.")
        p.add_argument("rollout_id", metavar="ROLLOUT_ID")
        common(p, inventory=False, json_help="one JSON line per event, a result line last")
        p.add_argument("-i", "--inventory", help="inventory (default: the one the rollout used)")
        p.add_argument("--forks", type=count, default=10, help="parallel hosts per Ansible run")
        p.add_argument("--verbose", action="store_true", help="with --json: Ansible task events too")
        p.set_defaults(run=run.run_rollback if name == "rollback" else run.run_resume)

    p = sub.add_parser("history", help="past rollouts: what, when, by whom, result")
    common(p, inventory=False)
    p.add_argument("rollout_id", nargs="?", metavar="ROLLOUT_ID", help="one rollout's events")
    p.add_argument("-n", type=count, default=20, help="how many (default %(default)s)")
    p.set_defaults(run=run.run_history)

    f = sub.add_parser("fleet", help="install and configure exporters on hosts",
                       description="Fleet set-up through the playbooks in playbooks/.")
    fsub = f.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    p = fsub.add_parser("install", help="install the exporter on hosts (bpfleet_exporter role)",
                        description="Build the host wheelhouse once (pip wheel of this checkout and the "
                        "exporter's runtime requirements), install it into /opt/bpfleet/venv on each host, "
                        "write /etc/bpfleet/exporter.toml's settings and run the exporter supervised (or "
                        "under systemd where it runs). Programs given with --program are staged and loaded "
                        "where the config has none yet. Idempotent; --check changes nothing.")
    common(p)
    p.add_argument("--program", action="append", default=[], type=ref, metavar="NAME@VERSION",
                   help="an initial program; repeatable")
    p.add_argument("--knob", action="append", default=[], metavar="NAME=VALUE",
                   help="knob value for the initial programs; repeatable")
    p.add_argument("--trusted-key", action="append", default=[], metavar="PUBKEY",
                   help="hosts load only artifacts signed by this ed25519 key; repeatable")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable of the exporter process; repeatable")
    p.add_argument("--otlp", action="store_true", help="also install the OpenTelemetry SDK (for [otlp])")
    p.add_argument("--check", action="store_true", help="check mode: report what would change")
    registry_arg(p)
    p.set_defaults(run=run.run_install)
