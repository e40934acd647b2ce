"""One reading of everything an exporter serves, at one moment (plain data).

Prometheus scrapes and OTLP pushes run on their own schedules; both render from a Snapshot.
Requests that arrive while a snapshot is being taken share it, so the maps are read once per
moment whoever asks, and rendering one format never holds up the other. Scrapes that share a
snapshot also share its rendered body (SharedBodies): one render, and one copy in memory, per
moment and format however many scrapers ask at once.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MapData:
    keys: bytes
    values: bytes
    count: int


@dataclass(frozen=True)
class MapStat:
    map: str
    entries: int
    max_entries: int
    read_seconds: float
    fills: bool = True      # hash maps fill up; arrays (and data sections) always hold max_entries


@dataclass(frozen=True)
class RingStat:
    map: str
    events: int
    drops: int                  # the program's own count of failed reserves (manifest `drops`)
    backlog_bytes: int = 0      # written and not consumed yet
    size_bytes: int = 0         # the ring's max_entries
    capped_polls: int = 0       # consume passes that stopped at the per-poll record limit


@dataclass(frozen=True)
class ProgramSnapshot:
    program: object                 # the LoadedProgram: its plan and per-format collectors
    maps: dict                      # map name -> MapData
    map_stats: tuple = ()           # MapStat per map read
    kernel: dict = field(default_factory=dict)   # BPF program name -> libbpf.KernelStats
    rings: tuple = ()               # RingStat per ring buffer

    @property
    def name(self) -> str:
        return self.program.name


@dataclass(frozen=True)
class SlotState:
    """What the self-metrics say about one configured program."""
    name: str
    attached: bool
    version: str | None
    digest: str | None
    load_errors: int
    read_errors: int
    variants: tuple = ()      # core.variants.Verdict of every [[variants]] entry
    not_applicable: str | None = None   # why the program cannot run on this host


@dataclass(frozen=True)
class Snapshot:
    time_unix_ns: int
    monotonic: float
    programs: tuple                 # ProgramSnapshot
    slots: tuple                    # SlotState
    read_seconds: float


class SnapshotCache:
    """Single flight: a request arriving while a snapshot is being taken waits for it and shares
    it; a request arriving later takes a new one (or, with `max_age`, shares one that young)."""

    def __init__(self, take, max_age: float = 0.0):
        self._take, self.max_age = take, max_age
        self._lock = threading.Lock()
        self._latest: Snapshot | None = None

    def get(self) -> Snapshot:
        asked = time.monotonic()
        with self._lock:
            s = self._latest
            if s is None or s.monotonic < asked - self.max_age:
                s = self._latest = self._take()
            return s

    def invalidate(self) -> None:
        # No lock: callers hold the supervisor's lock, which a snapshot in progress takes too.
        self._latest = None


class SharedBodies:
    """Rendered bodies, one per key (format, encoding), of the latest snapshot: single flight
    over snapshot *and* render. A request is served the cached body when its snapshot was
    finished after the request arrived (or, with the SnapshotCache's `max_age`, that young);
    else it takes a snapshot (through the SnapshotCache, shared with OTLP) and renders. While
    one render runs, every request arriving waits and then shares the next one: one render per
    wave of scrapers, and one body per wave in memory, however many scrapers ask at once. No
    request is served an older moment than it would be alone.

    One lock for all renders, which share the collectors' label caches (exporter/collect.py).
    The latest snapshot's bodies stay until the next snapshot: what one scrape holds anyway."""

    def __init__(self, snapshots: SnapshotCache):
        self.snapshots = snapshots
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._bodies: dict = {}
        self.renders = 0            # bodies rendered; a request served a shared one does not count

    def get(self, key: Hashable, render: Callable[[Snapshot], bytes]) -> bytes:
        asked = time.monotonic()
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.monotonic < asked - self.snapshots.max_age:
                snap = self.snapshots.get()
                if snap is not self._snapshot:
                    self._snapshot, self._bodies = snap, {}
            body = self._bodies.get(key)
            if body is None:
                body = self._bodies[key] = render(snap)
                self.renders += 1
            return body
