"""The fleet verbs, one run_* function each (their arguments: parser.py; docs/orchestrator.md)."""
from __future__ import annotations

import json
import time
from pathlib import Path

from bpfleet.commands.fleet.common import (UsageError, ansible_fleet, drive, guard, open_journal,
                                           parse_knobs, progress_view, resolve, say, select_hosts)
from orchestrator import packaging
from orchestrator.engine import journal as J
from orchestrator.engine.fleet import Artifact
from orchestrator.engine.rollout import Options
from orchestrator.engine.waves import DEFAULT_STEPS

# tables.py (rich) is imported in the commands that print one: see common.py.


@guard
def run_rollout(args) -> int:
    artifact, manifest_budget = resolve(args.registry, args.ref, args.trusted_key)
    knobs = parse_knobs(args.knob)
    hosts = select_hosts(args)
    budget = args.budget_ns if args.budget_ns is not None else manifest_budget
    options = Options(steps=args.steps or DEFAULT_STEPS, bake_seconds=args.bake,
                      max_failures=args.max_failures, incompatible=args.incompatible,
                      budget_ns=budget, canary=not args.no_canary)
    journal = open_journal(args)
    fleet = ansible_fleet(args, args.inventory, args.registry, journal, knobs, args.trusted_key)
    if not args.json:
        print(f"rollout {artifact.program}@{artifact.version} sha256:{artifact.digest} to {len(hosts)} "
              f"host(s); budget {f'{budget:.0f} ns/event' if budget else 'none'}; journal {journal.path}")
    context = {"knobs": knobs, "trusted_keys": list(args.trusted_key), "limit": args.limit,
               "forks": args.forks, "registry": args.registry}
    seen = set()
    track = fleet.track

    def track_and_record(e: dict) -> None:   # the fleet context a later resume needs
        if e.get("rollout") and e["rollout"] not in seen:
            seen.add(e["rollout"])
            journal.event(e["rollout"], "context", context)
        track(e)

    fleet.track = track_and_record
    return drive(args, journal, fleet, lambda eng: eng.start(artifact, args.inventory, hosts, options))


def _reopen(args):
    journal = open_journal(args)
    r = journal.get(args.rollout_id)
    ctx = next((e["detail"] for e in journal.events(r.id) if e["kind"] == "context"), {})
    art = Artifact(**r.options["artifact"])
    registry = str(Path(art.path).parent.parent)
    fleet = ansible_fleet(args, args.inventory or r.inventory, registry, journal, ctx.get("knobs"),
                          ctx.get("trusted_keys", ()))
    fleet.rollout = r.id
    return journal, r, fleet


@guard
def run_resume(args) -> int:
    journal, r, fleet = _reopen(args)
    if r.state not in J.UNFINISHED:
        raise UsageError(f"rollout {r.id} is {r.state} ({r.result}): nothing to resume")
    return drive(args, journal, fleet, lambda eng: (r.id, eng.resume(r.id)))


@guard
def run_rollback(args) -> int:
    journal, r, fleet = _reopen(args)
    if r.state == J.ROLLED_BACK:
        raise UsageError(f"rollout {r.id} is rolled back already")
    return drive(args, journal, fleet, lambda eng: (r.id, eng.rollback(r.id)))


@guard
def run_history(args) -> int:
    from bpfleet.commands.fleet import tables
    journal = open_journal(args)
    if args.rollout_id:
        r, events = journal.get(args.rollout_id), journal.events(args.rollout_id)
        if args.json:
            print(json.dumps({"rollout": tables.rollout_dict(r), "events": events}, indent=2, default=str))
        else:
            tables.print_events(r, events)
        return 0
    rollouts = journal.history(args.n)
    if args.json:
        print(json.dumps([tables.rollout_dict(r) for r in rollouts], indent=2, default=str))
    else:
        tables.print_history(rollouts)
    return 0


@guard
def run_plan(args) -> int:
    from bpfleet.commands.fleet import tables
    artifact, budget = resolve(args.registry, args.ref, args.trusted_key)
    hosts = select_hosts(args)
    journal = open_journal(args)
    fleet = ansible_fleet(args, args.inventory, args.registry, journal)
    fleet.rollout = f"plan-{time.strftime('%Y%m%d-%H%M%S')}"
    run = fleet.host_reports(hosts, artifact.program)
    plan = tables.plan(artifact, run, args.steps or DEFAULT_STEPS, budget)
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        tables.print_plan(plan)
    return 0


@guard
def run_status(args) -> int:
    from bpfleet.commands.fleet import tables
    hosts = select_hosts(args)
    journal = open_journal(args)
    fleet = ansible_fleet(args, args.inventory, "", journal)
    fleet.rollout = f"status-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = tables.status_rows(fleet.host_reports(hosts, None, step="status"))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        tables.print_status(rows)
    return 0 if all(r["exporter"] == "up" for r in rows) else 1


@guard
def run_install(args) -> int:
    from bpfleet.commands.fleet import tables
    hosts = select_hosts(args)
    journal = open_journal(args)
    programs = [resolve(args.registry, ref, args.trusted_key)[0] for ref in args.program]
    env = dict(e.split("=", 1) for e in args.env if "=" in e)
    if len(env) != len(args.env):
        raise UsageError("--env: expected NAME=VALUE")
    fleet = ansible_fleet(args, args.inventory, args.registry, journal, parse_knobs(args.knob), args.trusted_key)
    fleet.rollout = f"install-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.json:
        view = progress_view(args)
        fleet.on_event = view.event
    wh = packaging.wheelhouse(packaging.default_cache(), otlp=args.otlp, signing=bool(args.trusted_key),
                              say=lambda m: say(args, m))
    say(args, f"installing on {len(hosts)} host(s) (wheelhouse sha256:{wh.digest[:12]}, Python {wh.python})")
    try:
        run = fleet.install(hosts, wh, programs, env, check=args.check)
    finally:
        if not args.json:
            view.close()
    rows = tables.install_rows(run)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        tables.print_install(rows, run.artifacts)
    return 0 if all(r["ok"] for r in rows) else 1
