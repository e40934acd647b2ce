"""Ring-buffer events: decoding records (pure) and the bounded, rate-limited hand-off from the
ring-buffer consumer to whoever exports them (exporter/otlp/push.py). No OpenTelemetry here.

A record's layout comes from the manifest's `[[events]] type` bound to the object's BTF
(core.binding.EventPlan.fields): integers decode to ints, enums to their enumerator names,
char arrays to text up to the first NUL, other arrays to hex.
"""
from __future__ import annotations

import struct
import time
from collections import deque
from dataclasses import dataclass

from core.binding import EventPlan

INT64_MAX = 2**63 - 1
_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
          (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
QUEUE_CAPACITY = 4096


@dataclass(frozen=True)
class Event:
    """One record as it left the ring buffer (what the consumer thread enqueues)."""
    program: str
    version: str
    plan: EventPlan
    data: bytes
    time_unix_ns: int


@dataclass(frozen=True)
class Decoded:
    attributes: dict        # field name -> int | str, plus bpfleet.* attributes
    body: str | bytes       # "exec true pid=42"; the raw bytes when the record has no type
    event_name: str         # "<program>.<struct>" ("exec.exec_event"), or "<program>.<map>"


class EventDecoder:
    """Decodes the records of one EventPlan. Fields beyond a short record are left out."""

    def __init__(self, plan: EventPlan, program: str, version: str):
        self.plan, self.program, self.version = plan, program, version
        self._ints = [f for f in plan.fields if f.kind in ("int", "enum")]
        self._ints.sort(key=lambda f: f.offset)
        fmt, pos = "<", 0
        for f in self._ints:
            fmt += (f"{f.offset - pos}x" if f.offset > pos else "") + _CODES[(f.size, f.signed)]
            pos = f.offset + f.size
        self._int_struct = struct.Struct(fmt)
        self._enums = {f.name: dict(f.enum_values) for f in self._ints if f.kind == "enum"}
        self._others = [f for f in plan.fields if f.kind in ("string", "bytes")]
        self._string = next((f.name for f in plan.fields if f.kind == "string"), None)
        self._base = {"bpfleet.program.name": program, "bpfleet.program.version": version}
        self.event_name = f"{program}.{plan.type or plan.map}"

    def decode(self, data: bytes) -> Decoded:
        attrs = dict(self._base)
        if not self.plan.type:
            attrs["bpfleet.event.size"] = len(data)
            return Decoded(attrs, bytes(data), self.event_name)
        if len(data) >= self._int_struct.size:
            values = self._int_struct.unpack_from(data)
            for f, v in zip(self._ints, values):
                attrs[f.name] = self._int_value(f.name, v)
        else:
            for f in self._ints:
                if f.offset + f.size <= len(data):
                    v = int.from_bytes(data[f.offset: f.offset + f.size], "little", signed=f.signed)
                    attrs[f.name] = self._int_value(f.name, v)
        for f in self._others:
            raw = data[f.offset: f.offset + f.size]
            if len(raw) < f.size:
                continue
            if f.kind == "string":
                attrs[f.name] = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
            else:
                attrs[f.name] = raw.hex()
        if len(data) < self.plan.size:
            attrs["bpfleet.event.truncated"] = True
        return Decoded(attrs, self._body(attrs), self.event_name)

    def _int_value(self, name: str, v: int):
        names = self._enums.get(name)
        if names is not None:
            return names.get(v, v)
        return v if v <= INT64_MAX else str(v)   # OTLP ints are int64

    def _body(self, attrs: dict) -> str:
        """`<program> <first text field> pid=<pid>`: "exec true pid=4242"."""
        parts = [self.program]
        if self._string and self._string in attrs:
            parts.append(str(attrs[self._string]))
        if "pid" in attrs:
            parts.append(f"pid={attrs['pid']}")
        return " ".join(parts)


class TokenBucket:
    """At most `rate` per second on average, bursts up to `burst`. Not thread-safe: one caller."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate))
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class EventSink:
    """What LoadedProgram.event_sink points at: called in the ring-buffer consumer thread for
    every record, so it only rate-limits and enqueues (bounded). The exporting side pops.

    Drops are counted by reason: "rate_limit" (over events_per_second), "queue_full" (the
    exporting side is behind, e.g. the endpoint is down)."""

    def __init__(self, events_per_second: float, capacity: int = QUEUE_CAPACITY, clock=time.monotonic):
        self.capacity = capacity
        self._bucket = TokenBucket(events_per_second, clock=clock)
        self._queue: deque[Event] = deque()
        self.received = 0
        self.dropped = {"rate_limit": 0, "queue_full": 0}
        self._time_ns = time.time_ns

    def __call__(self, program, plan: EventPlan, data: bytes) -> None:
        self.received += 1
        if not self._bucket.take():
            self.dropped["rate_limit"] += 1
            return
        if len(self._queue) >= self.capacity:
            self.dropped["queue_full"] += 1
            return
        self._queue.append(Event(program.name, program.artifact.version, plan, data, self._time_ns()))

    def __len__(self) -> int:
        return len(self._queue)

    def pop(self, limit: int) -> list[Event]:
        out = []
        q = self._queue
        while q and len(out) < limit:
            out.append(q.popleft())
        return out
