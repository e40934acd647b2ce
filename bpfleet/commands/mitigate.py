"""`bpfleet mitigate apply|promote|revoke|status`: mitigations across the fleet (the commands
are in bpfleet/commands/mitigate_run.py; docs/mitigations.md#across-the-fleet)."""
from __future__ import annotations

from bpfleet.commands.fleet import _count, _seconds, _steps


def add_parser(sub, registry_arg) -> None:
    from bpfleet.commands import fleet_run as cli, mitigate_run as mc
    m = sub.add_parser("mitigate", help="mitigations across the fleet: apply, promote, revoke, status",
                       description="Kernel hotpatches as eBPF programs with a lifecycle "
                       "(docs/mitigations.md).")
    msub = m.add_subparsers(dest="mitigate_command", required=True, metavar="ACTION")

    def common(p, rollout: bool = False):
        p.add_argument("name", metavar="NAME", help="the mitigation (a registry program with [mitigation])")
        p.add_argument("-i", "--inventory", required=True, help="Ansible inventory")
        p.add_argument("-l", "--limit", default=None if rollout else "all", metavar="PATTERN",
                       help="only these hosts (default: apply, the manifest's [mitigation] scope; else all)")
        p.add_argument("--forks", type=_count, default=10, help="parallel hosts per Ansible run")
        p.add_argument("--journal", help=f"rollout journal (default {cli.default_journal()})")
        p.add_argument("--json", action="store_true", help="JSON output (for CI)")
        if rollout:
            p.add_argument("--steps", type=_steps, default=None, help="cumulative wave sizes after the canary")
            p.add_argument("--bake", type=_seconds, default=30.0, metavar="SECONDS", help="wait after each wave")
            p.add_argument("--max-failures", type=_count, default=None, metavar="N",
                           help="hosts that may fail (default: any; they are reported, the rest stay protected)")
            p.add_argument("--verbose", action="store_true", help="with --json: Ansible task events too")
        registry_arg(p)

    p = msub.add_parser("apply", help="apply a mitigation: preflight, canary, gated waves",
                        description="Stage and apply NAME on every host (monitor by default), with an "
                        "absolute expiry. Hosts whose kernel cannot run it are reported and skipped.")
    common(p, rollout=True)
    p.add_argument("--version", default="latest", help="version (default latest)")
    p.add_argument("--mode", choices=("monitor", "enforce"), default="monitor")
    p.add_argument("--list", action="append", default=[], metavar="LIST=ENTRY[,ENTRY]",
                   help="a list's entries (replaces the list); repeatable")
    p.add_argument("--ttl", help="expire after this long (\"12h\", \"30d\"; default the manifest's ttl)")
    p.add_argument("--interface", action="append", default=[], help="XDP: attach to this interface; repeatable")
    p.add_argument("--cgroup", help="cgroup programs: the cgroup v2 directory to attach to")
    p.set_defaults(run=mc.run_apply)

    p = msub.add_parser("promote", help="monitor -> enforce, after showing the fleet-wide would-block counts",
                        description="Show every host's would-block counts, then switch the hosts in "
                        "monitor mode to enforce through canary and gated waves (rollback: monitor).")
    common(p, rollout=True)
    p.add_argument("--yes", action="store_true", help="do not ask (required without a terminal)")
    p.set_defaults(run=mc.run_promote)

    p = msub.add_parser("revoke", help="the kill switch: remove NAME from every host in one wave",
                        description="Revoke NAME on every host at once (forks = hosts) and report the "
                        "hosts that could not be reached. Exit 1 if any.")
    common(p)
    p.add_argument("--timeout", type=_count, default=20, metavar="SECONDS",
                   help="SSH connect and task timeout per host (default %(default)s: what a dead host costs)")
    p.set_defaults(run=mc.run_revoke)

    p = msub.add_parser("status", help="per host: state, mode, would-block/blocked counts, expiry")
    common(p)
    p.set_defaults(run=mc.run_status)
