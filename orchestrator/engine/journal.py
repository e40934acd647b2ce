"""The rollout journal: every rollout, wave and host transition, written before it happens.

SQLite in WAL mode with synchronous=FULL: a transition is on disk before the action it
announces starts, so after a crash `resume` knows exactly what was begun and `rollback` knows
every host that may have been touched.
"""
from __future__ import annotations

import getpass
import json
import os
import sqlite3
import time
import uuid
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, program TEXT NOT NULL, version TEXT NOT NULL, digest TEXT,
    previous TEXT, inventory TEXT NOT NULL, plan TEXT NOT NULL, options TEXT NOT NULL,
    started_by TEXT NOT NULL, started_at REAL NOT NULL, state TEXT NOT NULL, result TEXT,
    updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, rollout TEXT NOT NULL REFERENCES rollouts(id),
    at REAL NOT NULL, wave INTEGER, host TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_rollout ON events(rollout, seq);
"""

# Rollout states. "running" and "rolling_back" are where a crash can leave a rollout.
RUNNING, PAUSED, SUCCEEDED, ROLLING_BACK, ROLLED_BACK, FAILED = (
    "running", "paused", "succeeded", "rolling_back", "rolled_back", "failed")
UNFINISHED = (RUNNING, PAUSED, ROLLING_BACK)


@dataclass(frozen=True)
class Rollout:
    id: str
    program: str
    version: str
    digest: str | None
    previous: dict          # host -> version running before the rollout touched it
    inventory: str
    plan: list              # waves: [{"index", "kind", "hosts"}]
    options: dict
    started_by: str
    started_at: float
    state: str
    result: str | None
    updated_at: float


class Journal:
    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def start(self, program: str, version: str, digest: str | None, inventory: str,
              plan: list, options: dict) -> str:
        rid = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = time.time()
        self.db.execute("INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (rid, program, version, digest, "{}", inventory, json.dumps(plan),
                         json.dumps(options), _who(), now, RUNNING, None, now))
        self.event(rid, "rollout_started", {"program": program, "version": version})
        return rid

    def event(self, rollout: str, kind: str, detail: dict | None = None, wave: int | None = None,
              host: str | None = None) -> None:
        self.db.execute("INSERT INTO events (rollout, at, wave, host, kind, detail) VALUES (?,?,?,?,?,?)",
                        (rollout, time.time(), wave, host, kind, json.dumps(detail or {})))

    def set_plan(self, rollout: str, plan: list) -> None:
        self.db.execute("UPDATE rollouts SET plan=?, updated_at=? WHERE id=?", (json.dumps(plan), time.time(), rollout))
        self.event(rollout, "plan", {"waves": plan})

    def set_state(self, rollout: str, state: str, result: str | None = None) -> None:
        self.db.execute("UPDATE rollouts SET state=?, result=COALESCE(?, result), updated_at=? WHERE id=?",
                        (state, result, time.time(), rollout))
        self.event(rollout, "state", {"state": state, "result": result})

    def remember_previous(self, rollout: str, host: str, version: str | None) -> None:
        """Record what a host ran before we touch it (once: the first answer is the truth)."""
        r = self.get(rollout)
        if host not in r.previous:
            prev = dict(r.previous, **{host: version})
            self.db.execute("UPDATE rollouts SET previous=? WHERE id=?", (json.dumps(prev), rollout))

    def get(self, rollout: str) -> Rollout:
        row = self.db.execute("SELECT * FROM rollouts WHERE id=?", (rollout,)).fetchone()
        if row is None:
            raise KeyError(f"no rollout {rollout!r} in {self.path}")
        return _rollout(row)

    def history(self, limit: int = 50) -> list[Rollout]:
        rows = self.db.execute("SELECT * FROM rollouts ORDER BY started_at DESC LIMIT ?", (limit,))
        return [_rollout(r) for r in rows]

    def events(self, rollout: str) -> list[dict]:
        rows = self.db.execute("SELECT seq, at, wave, host, kind, detail FROM events WHERE rollout=? "
                               "ORDER BY seq", (rollout,))
        return [{"seq": s, "at": at, "wave": w, "host": h, "kind": k, "detail": json.loads(d)}
                for s, at, w, h, k, d in rows]

    def host_states(self, rollout: str) -> dict[str, str]:
        """The last host transition per host ("staging", "upgraded", "rolled_back", ...)."""
        states = {}
        for e in self.events(rollout):
            if e["host"] and e["kind"].startswith("host_"):
                states[e["host"]] = e["kind"].removeprefix("host_")
        return states

    def touched(self, rollout: str) -> list[str]:
        """Hosts the rollout began to change, in the order it began: rollback goes newest first."""
        seen = []
        for e in self.events(rollout):
            if e["kind"] == "host_upgrading" and e["host"] not in seen:
                seen.append(e["host"])
        return seen


def _rollout(row) -> Rollout:
    (rid, program, version, digest, previous, inventory, plan, options, by, started, state,
     result, updated) = row
    return Rollout(rid, program, version, digest, json.loads(previous), inventory, json.loads(plan),
                   json.loads(options), by, started, state, result, updated)


def _who() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    return os.environ.get("SUDO_USER") and f"{os.environ['SUDO_USER']} (as {user})" or user
