"""The fleet commands (argument parsing: bpfleet/commands/fleet.py; docs/orchestrator.md)."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from orchestrator.engine import journal as J
from orchestrator.engine.fleet import Artifact
from orchestrator.engine.rollout import EXIT_CODES, Options, Rollouts

EXIT_USAGE = 2


class UsageError(Exception):
    pass


def default_journal() -> str:
    if os.environ.get("BPFLEET_JOURNAL"):
        return os.environ["BPFLEET_JOURNAL"]
    if os.geteuid() == 0:
        return "/var/lib/bpfleet-orchestrator/journal.db"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "bpfleet" / "journal.db")


def _journal(args) -> J.Journal:
    return J.Journal(args.journal or default_journal())


def _workdir(journal: J.Journal) -> str:
    """Ansible runs' private data dir: artifacts/<ident>/ per run, beside the journal."""
    return str(Path(journal.path).resolve().parent / "runs")


def _knobs(items: list[str]) -> dict:
    from bpfleet.commands.programs import _knob
    try:
        return dict(_knob(k) for k in items)
    except ValueError as e:
        raise UsageError(str(e))


def _say(args, msg: str) -> None:
    print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)


def _guard(fn):
    def wrapped(args) -> int:
        from core.problems import ProblemsError
        from orchestrator.packaging import PackagingError
        try:
            return fn(args)
        except (UsageError, ProblemsError, PackagingError, KeyError, ValueError) as e:
            print(f"bpfleet {args.command}: {e}", file=sys.stderr)
            return EXIT_USAGE
    wrapped.__name__ = fn.__name__
    return wrapped


def resolve(registry: str, ref: tuple[str, str], trusted_keys: list[str]) -> tuple[Artifact, float | None]:
    """name@version in the control machine's registry (digest checked; signature with keys)
    -> (the pinned artifact, the manifest's budget in ns per event or None)."""
    from core import manifest, registry as reg
    a = reg.resolve(Path(registry), ref[0], ref[1], [Path(k) for k in trusted_keys] or None)
    m, _ = manifest.load(str(a.manifest_path))
    budget = getattr(getattr(m, "budget", None), "ns_per_event", None)
    return Artifact(a.name, a.version, a.digest, str(a.dir)), budget


def _fleet(args, inventory: str, registry: str, journal: J.Journal, knobs=None, trusted_keys=(),
           on_event=None):
    from orchestrator.ansible.fleet import AnsibleFleet
    if not Path(inventory).is_file():
        raise UsageError(f"inventory {inventory}: no such file")
    return AnsibleFleet(inventory, registry, _workdir(journal), forks=args.forks or 10, knobs=knobs,
                        trusted_keys=tuple(trusted_keys), on_event=on_event)


def _hosts(args) -> list[str]:
    from orchestrator.ansible.fleet import inventory_hosts
    if not Path(args.inventory).is_file():
        raise UsageError(f"inventory {args.inventory}: no such file")
    hosts = inventory_hosts(args.inventory, args.limit)
    if not hosts:
        raise UsageError(f"no host in {args.inventory} matches {args.limit!r}")
    return hosts


def _progress(args):
    from bpfleet.commands import progress
    return progress.JsonLines(tasks=getattr(args, "verbose", False)) if args.json else progress.Live()


def _drive(args, journal: J.Journal, fleet, action) -> int:
    """Run `action(engine)` -> (rollout id, result) with live progress; print the result."""
    view = _progress(args)

    def on_progress(e: dict) -> None:
        fleet.track(e)
        view.event(e)

    fleet.on_event = view.event
    t0 = time.monotonic()
    try:
        rid, result = action(Rollouts(journal, fleet, progress=on_progress))
    except KeyboardInterrupt:
        print("interrupted: the journal has every step; `bpfleet resume ID` continues, "
              "`bpfleet rollback ID` undoes (ID from `bpfleet history`)", file=sys.stderr)
        return 130
    finally:
        view.close()
    r = journal.get(rid)
    wall = time.monotonic() - t0
    summary = {"kind": "result", "rollout": rid, "program": r.program, "version": r.version,
               "result": result, "exit_code": EXIT_CODES[result], "state": r.state, "detail": r.result,
               "host_states": journal.host_states(rid), "wall_seconds": round(wall, 2),
               "ansible_seconds": round(fleet.stats.ansible_seconds, 2),
               "runs": len(fleet.stats.runs), "artifacts": _workdir(journal) + "/artifacts"}
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        colour = {"succeeded": "green", "rolled_back": "yellow"}.get(result, "red")
        from bpfleet.commands.views import _console
        _console().print(
            f"[bold {colour}]{result}[/]: {r.program}@{r.version} rollout {rid} ({r.result or r.state}) "
            f"in {wall:.1f} s\n  journal {journal.path}; audit trail {summary['artifacts']}/{rid}-*")
    return EXIT_CODES[result]


# ---- commands ----
@_guard
def run_rollout(args) -> int:
    artifact, manifest_budget = resolve(args.registry, args.ref, args.trusted_key)
    knobs = _knobs(args.knob)
    hosts = _hosts(args)
    budget = args.budget_ns if args.budget_ns is not None else manifest_budget
    from orchestrator.engine.waves import DEFAULT_STEPS
    options = Options(steps=args.steps or DEFAULT_STEPS, bake_seconds=args.bake,
                      max_failures=args.max_failures, incompatible=args.incompatible,
                      budget_ns=budget, canary=not args.no_canary)
    journal = _journal(args)
    fleet = _fleet(args, args.inventory, args.registry, journal, knobs, args.trusted_key)
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
    return _drive(args, journal, fleet, lambda eng: eng.start(artifact, args.inventory, hosts, options))


def _reopen(args):
    journal = _journal(args)
    r = journal.get(args.rollout_id)
    ctx = next((e["detail"] for e in journal.events(r.id) if e["kind"] == "context"), {})
    art = Artifact(**r.options["artifact"])
    registry = str(Path(art.path).parent.parent)
    fleet = _fleet(args, args.inventory or r.inventory, registry, journal, ctx.get("knobs"),
                   ctx.get("trusted_keys", ()))
    fleet.rollout = r.id
    return journal, r, fleet


@_guard
def run_resume(args) -> int:
    journal, r, fleet = _reopen(args)
    if r.state not in J.UNFINISHED:
        raise UsageError(f"rollout {r.id} is {r.state} ({r.result}): nothing to resume")
    return _drive(args, journal, fleet, lambda eng: (r.id, eng.resume(r.id)))


@_guard
def run_rollback(args) -> int:
    journal, r, fleet = _reopen(args)
    if r.state == J.ROLLED_BACK:
        raise UsageError(f"rollout {r.id} is rolled back already")
    return _drive(args, journal, fleet, lambda eng: (r.id, eng.rollback(r.id)))


@_guard
def run_history(args) -> int:
    from bpfleet.commands import views
    journal = _journal(args)
    if args.rollout_id:
        r, events = journal.get(args.rollout_id), journal.events(args.rollout_id)
        if args.json:
            print(json.dumps({"rollout": views.rollout_dict(r), "events": events}, indent=2, default=str))
        else:
            views.print_events(r, events)
        return 0
    rollouts = journal.history(args.n)
    if args.json:
        print(json.dumps([views.rollout_dict(r) for r in rollouts], indent=2, default=str))
    else:
        views.print_history(rollouts)
    return 0


@_guard
def run_plan(args) -> int:
    from bpfleet.commands import views
    artifact, budget = resolve(args.registry, args.ref, args.trusted_key)
    hosts = _hosts(args)
    journal = _journal(args)
    fleet = _fleet(args, args.inventory, args.registry, journal)
    fleet.rollout = f"plan-{time.strftime('%Y%m%d-%H%M%S')}"
    run = fleet.host_reports(hosts, artifact.program)
    from orchestrator.engine.waves import DEFAULT_STEPS
    plan = views.plan(artifact, run, args.steps or DEFAULT_STEPS, budget)
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        views.print_plan(plan)
    return 0


@_guard
def run_status(args) -> int:
    from bpfleet.commands import views
    hosts = _hosts(args)
    journal = _journal(args)
    fleet = _fleet(args, args.inventory, "", journal)
    fleet.rollout = f"status-{time.strftime('%Y%m%d-%H%M%S')}"
    rows = views.status_rows(fleet.host_reports(hosts, None, step="status"))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        views.print_status(rows)
    return 0 if all(r["exporter"] == "up" for r in rows) else 1


@_guard
def run_install(args) -> int:
    from orchestrator import packaging
    from bpfleet.commands import views
    hosts = _hosts(args)
    journal = _journal(args)
    programs = [resolve(args.registry, ref, args.trusted_key)[0] for ref in args.program]
    env = dict(e.split("=", 1) for e in args.env if "=" in e)
    if len(env) != len(args.env):
        raise UsageError("--env: expected NAME=VALUE")
    fleet = _fleet(args, args.inventory, args.registry, journal, _knobs(args.knob), args.trusted_key)
    fleet.rollout = f"install-{time.strftime('%Y%m%d-%H%M%S')}"
    if not args.json:
        view = _progress(args)
        fleet.on_event = view.event
    wh = packaging.wheelhouse(packaging.default_cache(), otlp=args.otlp, signing=bool(args.trusted_key),
                              say=lambda m: _say(args, m))
    _say(args, f"installing on {len(hosts)} host(s) (wheelhouse sha256:{wh.digest[:12]}, Python {wh.python})")
    try:
        run = fleet.install(hosts, wh, programs, env, check=args.check)
    finally:
        if not args.json:
            view.close()
    rows = views.install_rows(run)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        views.print_install(rows, run.artifacts)
    return 0 if all(r["ok"] for r in rows) else 1
