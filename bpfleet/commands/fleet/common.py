"""What every fleet command does around the rollout engine (`bpfleet mitigate` too): find the
journal, open the Ansible fleet, pick the hosts, resolve the artifact, drive a rollout with
progress, and turn a usage error into a message and exit 2.

rich (tables.py, progress.py) and the Ansible boundary are imported where they are used: hosts
build this parser for `bpfleet exporter` from a venv without the control machine's extras.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

from bpfleet.commands.args import knob
from core import manifest, registry as reg
from core.problems import ProblemsError
from orchestrator.engine import journal as J
from orchestrator.engine.fleet import Artifact
from orchestrator.engine.rollout import EXIT_CODES, Rollouts
from orchestrator.packaging import PackagingError

EXIT_USAGE = 2


class UsageError(Exception):
    pass


def guard(fn):
    """A command whose usage errors (and bad registry or input) print one line and exit 2."""
    @functools.wraps(fn)
    def wrapped(args) -> int:
        try:
            return fn(args)
        except (UsageError, ProblemsError, PackagingError, KeyError, ValueError) as e:
            print(f"bpfleet {args.command}: {e}", file=sys.stderr)
            return EXIT_USAGE
    return wrapped


def default_journal() -> str:
    if os.environ.get("BPFLEET_JOURNAL"):
        return os.environ["BPFLEET_JOURNAL"]
    if os.geteuid() == 0:
        return "/var/lib/bpfleet-orchestrator/journal.db"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return str(Path(state) / "bpfleet" / "journal.db")


def open_journal(args) -> J.Journal:
    return J.Journal(args.journal or default_journal())


def workdir(journal: J.Journal) -> str:
    """Ansible runs' private data dir: artifacts/<ident>/ per run, beside the journal."""
    return str(Path(journal.path).resolve().parent / "runs")


def parse_knobs(items: list[str]) -> dict:
    try:
        return dict(knob(k) for k in items)
    except ValueError as e:
        raise UsageError(str(e))


def say(args, msg: str) -> None:
    """Progress text: on stderr when stdout carries JSON."""
    print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)


def resolve(registry: str, ref: tuple[str, str], trusted_keys: list[str]) -> tuple[Artifact, float | None]:
    """name@version in the control machine's registry (digest checked; signature with keys)
    -> (the pinned artifact, the manifest's budget in ns per event or None)."""
    a = reg.resolve(Path(registry), ref[0], ref[1], [Path(k) for k in trusted_keys] or None)
    m, _ = manifest.load(str(a.manifest_path))
    budget = getattr(getattr(m, "budget", None), "ns_per_event", None)
    return Artifact(a.name, a.version, a.digest, str(a.dir)), budget


def ansible_fleet(args, inventory: str, registry: str, journal: J.Journal, knobs=None, trusted_keys=(),
                  on_event=None):
    from orchestrator.ansible.fleet import AnsibleFleet
    if not Path(inventory).is_file():
        raise UsageError(f"inventory {inventory}: no such file")
    return AnsibleFleet(inventory, registry, workdir(journal), forks=args.forks or 10, knobs=knobs,
                        trusted_keys=tuple(trusted_keys), on_event=on_event)


def select_hosts(args) -> list[str]:
    """The inventory's hosts that --limit matches (at least one)."""
    from orchestrator.ansible.runner import inventory_hosts
    if not Path(args.inventory).is_file():
        raise UsageError(f"inventory {args.inventory}: no such file")
    hosts = inventory_hosts(args.inventory, args.limit)
    if not hosts:
        raise UsageError(f"no host in {args.inventory} matches {args.limit!r}")
    return hosts


def progress_view(args):
    from bpfleet.commands.fleet import progress
    return progress.JsonLines(tasks=getattr(args, "verbose", False)) if args.json else progress.Live()


def drive(args, journal: J.Journal, fleet, action) -> int:
    """Run `action(engine)` -> (rollout id, result) with live progress; print the result."""
    view = progress_view(args)

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
               "runs": len(fleet.stats.runs), "artifacts": workdir(journal) + "/artifacts"}
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        from bpfleet.commands.fleet.tables import console
        colour = {"succeeded": "green", "rolled_back": "yellow"}.get(result, "red")
        console().print(
            f"[bold {colour}]{result}[/]: {r.program}@{r.version} rollout {rid} ({r.result or r.state}) "
            f"in {wall:.1f} s\n  journal {journal.path}; audit trail {summary['artifacts']}/{rid}-*")
    return EXIT_CODES[result]
