"""Showing a rollout as it happens: one JSON line per event (`--json`, for CI), or a live
terminal view with rich (per wave, per host; the Ansible task running on each host below)."""
from __future__ import annotations

import json
import sys
import time

from core.extras import require

require("control", "The terminal views", "rich")
from rich.console import Console
from rich.table import Table

MARK = {"pass": "[green]pass[/]", "fail": "[red]FAIL[/]", "inconclusive": "[yellow]inconclusive[/]"}


class JsonLines:
    """Every engine event as a JSON line on stdout, flushed (a CI job can follow or kill it)."""

    def __init__(self, tasks: bool = False, out=None):
        self.tasks, self.out = tasks, out or sys.stdout

    def event(self, e: dict) -> None:
        if e.get("kind") == "task" and not self.tasks:
            return
        self.out.write(json.dumps({"at": round(time.time(), 3), **e}, default=str) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class Live:
    """Engine events as lines; the Ansible task each host is in as a transient status line."""

    def __init__(self, console: Console | None = None):
        self.c = console or Console(highlight=False)
        if not self.c.is_terminal and console is None:
            self.c = Console(highlight=False, width=200)
        self.status = self.c.status("starting", spinner="dots") if self.c.is_terminal else None
        self.running: dict[str, str] = {}
        self.version = None
        self.t0 = time.monotonic()
        if self.status:
            self.status.start()

    def _line(self, text: str) -> None:
        self.c.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/] {text}")

    def event(self, e: dict) -> None:
        kind, host, wave = e.get("kind"), e.get("host"), e.get("wave")
        if kind == "task":
            self.running[host] = f"{e['task']} ({e['result']})"
            if self.status:
                shown = ", ".join(f"{h}: {t}" for h, t in list(self.running.items())[-3:])
                self.status.update(f"[dim]{e['ident']}[/]  {shown}")
            return
        self.running.clear()
        say = {
            "preflight": lambda: f"preflight  {host}  kernel {e.get('kernel')}: load without attaching",
            "host_incompatible": lambda: f"[yellow]incompatible[/] {host}: {e.get('error')}",
            "host_failed": lambda: f"[red]failed[/]     {host}: {e.get('error')}",
            "wave_started": lambda: f"[bold]wave {wave}[/] ({'canary' if wave == 0 else 'wave'}): "
                                    f"{', '.join(e.get('hosts', []))}",
            "host_upgrading": lambda: setattr(self, "version", e.get("version")),
            "host_upgraded": lambda: f"  [green]✓[/] {host} runs {self.version}",
            "bake": lambda: f"  bake {e.get('seconds')} s",
            "gate": lambda: self._gate(e),
            "wave_passed": lambda: f"[green]wave {wave} passed[/]",
            "abort": lambda: f"[red bold]abort[/]: {e.get('error')}",
            "host_rolling_back": lambda: f"  rolling back {host} → {e.get('version') or '(unload)'}",
            "host_rolled_back": lambda: f"  [green]↺[/] {host} back on {e.get('version') or '(none)'}",
            "host_rollback_failed": lambda: f"  [red]rollback failed[/] {host}: {e.get('error')}",
            "resumed": lambda: "resumed from the journal",
        }.get(kind, lambda: f"{kind} {host or ''} {e.get('error') or ''}")()
        if say:
            self._line(say)

    def _gate(self, e: dict) -> str:
        t = Table(show_header=False, box=None, padding=(0, 1))
        for c in e.get("checks", []):
            t.add_row("   ", MARK.get(c["result"], c["result"]), c["name"], c["detail"],
                      ", ".join(c.get("hosts", [])))
        self._line(f"  gate: {MARK.get(e.get('result'), e.get('result'))}")
        self.c.print(t)
        return ""

    def close(self) -> None:
        if self.status:
            self.status.stop()
