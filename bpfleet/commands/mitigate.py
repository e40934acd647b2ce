"""`bpfleet mitigate apply|promote|revoke|status`: mitigations across the fleet
(docs/mitigations.md#across-the-fleet). Apply and promote are rollouts (journal, preflight,
canary, gates; the machinery in fleet/common.py); revoke and status are one Ansible run to
every host."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bpfleet.commands.args import count, seconds, steps
from bpfleet.commands.fleet.common import (UsageError, ansible_fleet, default_journal, drive, guard,
                                           open_journal, resolve, select_hosts)
from core import manifest, registry as reg
from core.listkinds import KINDS, encode_entries
from core.mitigation import parse_duration
from orchestrator.ansible.mitigations import MitigationFleet
from orchestrator.engine.mitigate import totals
from orchestrator.engine.rollout import Options
from orchestrator.engine.waves import DEFAULT_STEPS


def add_parser(sub, registry_arg) -> None:
    m = sub.add_parser("mitigate", help="mitigations across the fleet: apply, promote, revoke, status",
                       description="Kernel hotpatches as eBPF programs with a lifecycle "
                       "(docs/mitigations.md).")
    msub = m.add_subparsers(dest="mitigate_command", required=True, metavar="ACTION")

    def common(p, rollout: bool = False):
        p.add_argument("name", metavar="NAME", help="the mitigation (a registry program with [mitigation])")
        p.add_argument("-i", "--inventory", required=True, help="Ansible inventory")
        p.add_argument("-l", "--limit", default=None if rollout else "all", metavar="PATTERN",
                       help="only these hosts (default: apply, the manifest's [mitigation] scope; else all)")
        p.add_argument("--forks", type=count, default=10, help="parallel hosts per Ansible run")
        p.add_argument("--journal", help=f"rollout journal (default {default_journal()})")
        p.add_argument("--json", action="store_true", help="JSON output (for CI)")
        if rollout:
            p.add_argument("--steps", type=steps, default=None, help="cumulative wave sizes after the canary")
            p.add_argument("--bake", type=seconds, default=30.0, metavar="SECONDS", help="wait after each wave")
            p.add_argument("--max-failures", type=count, default=None, metavar="N",
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
    p.set_defaults(run=run_apply)

    p = msub.add_parser("promote", help="monitor -> enforce, after showing the fleet-wide would-block counts",
                        description="Show every host's would-block counts, then switch the hosts in "
                        "monitor mode to enforce through canary and gated waves (rollback: monitor).")
    common(p, rollout=True)
    p.add_argument("--yes", action="store_true", help="do not ask (required without a terminal)")
    p.set_defaults(run=run_promote)

    p = msub.add_parser("revoke", help="the kill switch: remove NAME from every host in one wave",
                        description="Revoke NAME on every host at once (forks = hosts) and report the "
                        "hosts that could not be reached. Exit 1 if any.")
    common(p)
    p.add_argument("--timeout", type=count, default=20, metavar="SECONDS",
                   help="SSH connect and task timeout per host (default %(default)s: what a dead host costs)")
    p.set_defaults(run=run_revoke)

    p = msub.add_parser("status", help="per host: state, mode, would-block/blocked counts, expiry")
    common(p)
    p.set_defaults(run=run_status)


# ---- the commands ----
def _manifest(registry: str, name: str, version: str = "latest"):
    a = reg.resolve(Path(registry), name, version)
    m, problems = manifest.load(str(a.manifest_path))
    if problems or m.mitigation is None:
        raise UsageError(f"{name}@{a.version} is not a mitigation (no [mitigation] table in {a.manifest_path})")
    return m


def settings_from(args, m, version: str, now: float) -> dict:
    """The exporter settings for `apply`, checked here against the manifest before any host."""
    lists, problems = {}, []
    for item in args.list:
        name, eq, entries = item.partition("=")
        spec = m.mitigation.lists.get(name)
        if not eq or spec is None:
            raise UsageError(f"--list {item!r}: expected LIST=ENTRY[,ENTRY...] with LIST one of "
                             f"{', '.join(m.mitigation.lists) or 'none'}")
        values = [e.strip() for e in entries.split(",") if e.strip()]
        _keys, bad = encode_entries(KINDS[spec.kind], values, 256 if "path" in spec.kind or "sysctl" in spec.kind
                                    else {"ipv4_prefix": 8, "ipv6_prefix": 20, "comm": 16}.get(spec.kind, 12))
        problems += [f"--list {name}{p}" for p in bad]
        lists[name] = lists.get(name, []) + values
    if problems:
        raise UsageError("; ".join(problems))
    ttl = m.mitigation.ttl_seconds
    if args.ttl:
        ttl = parse_duration(args.ttl, "--ttl", lambda w, msg: (_ for _ in ()).throw(UsageError(f"{w}: {msg}")))
    settings = {"version": version, "mode": args.mode, "lists": lists,
                "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + ttl))}
    attach = {k: v for k, v in (("interfaces", args.interface), ("cgroup", args.cgroup)) if v}
    if attach:
        settings["attach"] = attach
    return settings


def _engine_fleet(args, journal, name: str, **kw) -> MitigationFleet:
    return MitigationFleet(ansible_fleet(args, args.inventory, args.registry, journal), name, **kw)


@guard
def run_apply(args) -> int:
    artifact, budget = resolve(args.registry, (args.name, args.version), [])
    m = _manifest(args.registry, args.name, artifact.version)
    settings = settings_from(args, m, artifact.version, time.time())
    args.limit = args.limit or ":".join(m.mitigation.scope)   # the manifest's scope by default
    hosts = select_hosts(args)
    journal = open_journal(args)
    fleet = _engine_fleet(args, journal, args.name, settings=settings)
    options = _options(args, hosts, budget)
    if not args.json:
        print(f"apply {artifact.program}@{artifact.version} ({', '.join(m.mitigation.answers)}) in {args.mode} "
              f"mode to {len(hosts)} host(s), expires {settings['expires']}; journal {journal.path}")
    return drive(args, journal, fleet, lambda eng: eng.start(artifact, args.inventory, hosts, options))


@guard
def run_promote(args) -> int:
    args.limit = args.limit or "all"
    hosts = select_hosts(args)
    journal = open_journal(args)
    fleet = _engine_fleet(args, journal, args.name, mode="enforce", undo_mode="monitor")
    fleet.rollout = f"promote-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = fleet.run(hosts, "query", "counts")
    t = totals(rows)
    _print_rows(args, rows, t, "before promote")
    running = sorted({r.version for r in rows.values() if r.state == "monitor"})
    if not running:
        raise UsageError(f"no host runs {args.name} in monitor mode: nothing to promote")
    if len(running) > 1:
        raise UsageError(f"hosts run different versions of {args.name} ({', '.join(running)}): apply one first")
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{t['would_block']:.0f} would-block decisions on {t['monitor']} host(s): "
                             "review them, then promote with --yes")
        if input(f"enforce {args.name} on {t['monitor']} host(s)? [y/N] ").strip().lower() != "y":
            return 1
    artifact, budget = resolve(args.registry, (args.name, running[0]), [])
    targets = [h for h, r in rows.items() if r.state == "monitor"]
    return drive(args, journal, fleet, lambda eng: eng.start(artifact, args.inventory, targets,
                                                                  _options(args, targets, budget)))


@guard
def run_revoke(args) -> int:
    hosts = select_hosts(args)
    journal = open_journal(args)
    args.forks = max(args.forks or 0, len(hosts))      # one wave: every host at once
    fleet = _engine_fleet(args, journal, args.name)
    # A kill switch does not wait a minute per dead host. Both limits matter: a host whose link
    # died after an earlier run still has a live-looking SSH ControlPersist master, so its
    # connect "succeeds" and the task hangs. (Inventory host vars such as a TCG VM's
    # ansible_ssh_timeout still win over the connect limit.)
    from orchestrator.ansible.runner import Timeouts  # here: hosts' `bpfleet` has no ansible-runner
    fleet.fleet.timeouts = Timeouts(job=300, task=args.timeout, connect=args.timeout)
    fleet.rollout = f"revoke-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    t0 = time.monotonic()
    rows = fleet.run(hosts, "absent", "revoke")
    unreachable = {h: r.error for h, r in rows.items() if not r.reachable}
    result = {"kind": "revoke", "mitigation": args.name, "hosts": len(hosts),
              "revoked": sorted(h for h, r in rows.items() if r.reachable),
              "unreachable": unreachable, "seconds": round(time.monotonic() - t0, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"revoked {args.name} on {len(result['revoked'])}/{len(hosts)} host(s) in {result['seconds']} s")
        for h, why in sorted(unreachable.items()):
            print(f"  NOT REVOKED on {h}: {why}")
    return 0 if not unreachable else 1


@guard
def run_status(args) -> int:
    hosts = select_hosts(args)
    journal = open_journal(args)
    fleet = _engine_fleet(args, journal, args.name)
    fleet.rollout = f"mstatus-{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = fleet.run(hosts, "query", "status")
    _print_rows(args, rows, totals(rows), "status")
    return 0 if all(r.reachable for r in rows.values()) else 1


def _options(args, hosts: list[str], budget) -> Options:
    # A host that cannot take a mitigation is reported and skipped; the rest stay protected.
    return Options(steps=args.steps or DEFAULT_STEPS, bake_seconds=args.bake,
                   max_failures=len(hosts) if args.max_failures is None else args.max_failures,
                   incompatible="skip", budget_ns=budget)


def _print_rows(args, rows: dict, t: dict, what: str) -> None:
    if args.json:
        print(json.dumps({"kind": what, "mitigation": args.name, "totals": t,
                          "hosts": [r.as_dict() for r in rows.values()]}), flush=True)
        return
    print(f"{args.name} {what}: {t['running']}/{t['hosts']} host(s) running, would_block {t['would_block']:.0f}, "
          f"blocked {t['blocked']:.0f}")
    print(f"  {'host':<20} {'state':<15} {'mode':<8} {'version':<9} {'would_block':>11} {'blocked':>8}  expires / why")
    for h, r in sorted(rows.items()):
        tail = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.expires_at)) if r.expires_at else "") \
            if r.state in ("monitor", "enforce") else (r.reason or r.error or "")
        print(f"  {h:<20} {(r.state or 'unreachable'):<15} {(r.mode or '-'):<8} {(r.version or '-'):<9} "
              f"{r.would_block:>11.0f} {r.blocked:>8.0f}  {tail}")
