"""Tables for the fleet commands: plan, status, history, install (plain data in, rich out)."""
from __future__ import annotations

import time

from core.extras import require

require("control", "The terminal views", "rich")
from rich.console import Console
from rich.table import Table

from orchestrator.engine.fleet import Artifact
from orchestrator.ansible.runner import RunResult
from orchestrator.engine.waves import Host, by_kernel, plan_waves


def console() -> Console:
    c = Console(highlight=False)
    return c if c.is_terminal else Console(highlight=False, width=200)


def _report(r) -> dict | None:
    return r.report if r.ok and isinstance(r.report, dict) else None


def _kernel(rep: dict) -> str:
    return f"{rep.get('release')} {rep.get('build')}"


# ---- plan ----
def plan(artifact: Artifact, run: RunResult, steps: tuple, budget: float | None) -> dict:
    hosts, usable = [], []
    for name, r in sorted(run.hosts.items()):
        rep = _report(r)
        row = {"host": name, "reachable": rep is not None, "error": None if rep else r.message}
        if rep:
            prog = rep.get("program") or {}
            row |= {"kernel": _kernel(rep), "release": rep.get("release"), "btf": rep.get("btf"),
                    "exporter": bool((rep.get("exporter") or {}).get("up")),
                    "running": prog.get("version"), "state": prog.get("state")}
            if not row["exporter"]:
                row["error"] = "no exporter answers (bpfleet fleet install)"
            elif not row["btf"]:
                row["error"] = "no kernel BTF: incompatible"
            elif row["running"] == artifact.version:
                row["note"] = "runs this version already (the upgrade is a no-op there)"
            if row["exporter"] and row["btf"]:
                usable.append(Host(name, row["kernel"]))
        hosts.append(row)
    builds = by_kernel(usable)
    waves = plan_waves(usable, tuple(steps)) if usable else []
    return {"program": artifact.program, "version": artifact.version, "digest": artifact.digest,
            "budget_ns": budget, "hosts": hosts,
            "kernel_builds": [{"kernel": k, "hosts": v, "preflight_host": v[0]} for k, v in builds.items()],
            "waves": [{"index": w.index, "kind": w.kind, "hosts": list(w.hosts)} for w in waves],
            "failing": [h["host"] for h in hosts if h["error"]]}


def print_plan(p: dict) -> None:
    c = console()
    c.print(f"[bold]plan[/] {p['program']}@{p['version']} sha256:{p['digest']}  (nothing was changed)")
    t = Table("host", "kernel build", "exporter", "running", "note")
    for h in p["hosts"]:
        t.add_row(h["host"], h.get("kernel", "?") if h["reachable"] else "[red]unreachable[/]",
                  ("up" if h.get("exporter") else "[red]down[/]") if h["reachable"] else "",
                  h.get("running") or "-", h.get("error") or h.get("note") or "")
    c.print(t)
    for b in p["kernel_builds"]:
        c.print(f"kernel [bold]{b['kernel']}[/]: {len(b['hosts'])} host(s); preflight on {b['preflight_host']}")
    for w in p["waves"]:
        c.print(f"wave {w['index']} ({w['kind']}): {', '.join(w['hosts'])}")
    c.print(f"cost budget: {str(round(p['budget_ns'])) + ' ns/event' if p['budget_ns'] else 'none'}")
    if p["failing"]:
        c.print(f"[yellow]{len(p['failing'])} host(s) would count as failures from the start:[/] "
                f"{', '.join(p['failing'])} (--max-failures)")


# ---- status ----
def status_rows(run: RunResult) -> list[dict]:
    rows = []
    for name, r in sorted(run.hosts.items()):
        rep = _report(r)
        if rep is None:
            rows.append({"host": name, "kernel": None, "exporter": "unreachable", "programs": {},
                         "load_per_cpu": None, "restarts": None, "error": r.message})
            continue
        ex, sup = rep.get("exporter") or {}, rep.get("supervisor") or {}
        load, cpus = rep.get("load1"), rep.get("cpus") or 1
        rows.append({"host": name, "kernel": rep.get("release"), "build": rep.get("build"),
                     "exporter": "up" if ex.get("up") else "down", "pid": ex.get("pid"),
                     "programs": {n: {k: p.get(k) for k in ("version", "state", "error", "digest", "run_time_ns", "run_count")}
                                  for n, p in (rep.get("programs") or {}).items()},
                     "load_per_cpu": None if load is None else round(float(load) / cpus, 3),
                     "restarts": sup.get("restarts"), "error": None if ex.get("up") else ex.get("error")})
    return rows


def print_status(rows: list[dict]) -> None:
    t = Table("host", "kernel", "exporter", "programs", "ns/event", "load/cpu", "restarts")
    for r in rows:
        progs = ", ".join(f"{n}@{p['version'] or '-'}" + ("" if p["state"] == "attached" else f" [red]{p['state']}[/]")
                          for n, p in sorted(r["programs"].items()))
        cost = ", ".join(f"{p['run_time_ns'] / p['run_count']:.0f}" for p in r["programs"].values()
                         if p.get("run_count"))
        exp = {"up": f"up ({r.get('pid')})", "down": "[red]down[/]"}.get(r["exporter"], f"[red]{r['exporter']}[/]")
        t.add_row(r["host"], r["kernel"] or "?", exp, progs or (r["error"] or "")[:60], cost,
                  "" if r["load_per_cpu"] is None else f"{r['load_per_cpu']:.2f}",
                  "" if r["restarts"] is None else str(r["restarts"]))
    console().print(t)


# ---- history ----
def rollout_dict(r) -> dict:
    return {"id": r.id, "program": r.program, "version": r.version, "digest": r.digest,
            "state": r.state, "result": r.result, "started_by": r.started_by,
            "started_at": r.started_at, "updated_at": r.updated_at, "inventory": r.inventory,
            "waves": r.plan, "previous": r.previous}


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def print_history(rollouts: list) -> None:
    t = Table("rollout", "program", "started", "by", "state", "result")
    for r in rollouts:
        t.add_row(r.id, f"{r.program}@{r.version}", _when(r.started_at), r.started_by, r.state,
                  (r.result or "")[:80])
    console().print(t)


def print_events(r, events: list[dict]) -> None:
    c = console()
    c.print(f"[bold]{r.id}[/] {r.program}@{r.version} by {r.started_by}: {r.state} ({r.result})")
    for e in events:
        d = {k: v for k, v in e["detail"].items() if k not in ("checks",)}
        wave = "" if e["wave"] is None else f"w{e['wave']}"
        c.print(f"{_when(e['at'])} {e['kind']:<20} {wave:<4} "
                f"{e['host'] or '':<16} {d if d else ''}")


# ---- install ----
def install_rows(run: RunResult) -> list[dict]:
    rows = []
    for name, r in sorted(run.hosts.items()):
        rep = _report(r) or {}
        rows.append({"host": name, "ok": r.ok, "error": None if r.ok else f"{r.failed_task}: {r.message}",
                     "exporter": (rep.get("exporter") or {}).get("up"), "manager": rep.get("manager"),
                     "installed_wheelhouse": rep.get("installed_wheelhouse"), "changed": list(r.changed),
                     "programs": {n: p.get("version") for n, p in (rep.get("programs") or {}).items()}})
    return rows


def print_install(rows: list[dict], artifacts: str) -> None:
    t = Table("host", "result", "exporter", "wheelhouse", "changed", "programs")
    for r in rows:
        t.add_row(r["host"], "ok" if r["ok"] else f"[red]{(r['error'] or '')[:70]}[/]",
                  "up" if r["exporter"] else "-", "installed" if r["installed_wheelhouse"] else "unchanged",
                  str(len(r["changed"])) if r["changed"] else "-",
                  ", ".join(f"{n}@{v}" for n, v in sorted(r["programs"].items())))
    c = console()
    c.print(t)
    c.print(f"audit trail: {artifacts}")
