"""A program in the kernel, as the exporter holds it: its object, map readers, metric
collectors and ring buffers (wired from its plan by `wire`), read back as snapshots and
Prometheus families. exporter/load/co_re.py (libbpf objects) and exporter/load/bcc_source.py (bcc
modules) make them."""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace

from core import binding as schema
from core.limits import DEFAULT_MAX_SERIES
from core.registry import Artifact
from exporter import libbpf
from exporter.collect import MetricCollector, scalar_format
from exporter.config import AttachTargets
from core.series import Family
from exporter.snapshot import MapData, MapStat, ProgramSnapshot, RingStat


@dataclass
class RingCounter:
    map: str
    events: int = 0
    capped_polls: int = 0     # consume passes that stopped at the per-poll limit


def _view(d: MapData) -> tuple[memoryview, memoryview, int]:
    return memoryview(d.keys), memoryview(d.values), d.count


@dataclass
class LoadedProgram:
    artifact: Artifact
    plan: schema.ProgramPlan
    obj: libbpf.BpfObject
    pin_dir: str
    knobs: dict
    collectors: list = field(default_factory=list)     # (MetricCollector, map name)
    readers: dict = field(default_factory=dict)        # map name -> MapReader
    rings: list = field(default_factory=list)          # (RingBuffer, RingCounter, EventPlan)
    # Called as event_sink(program, EventPlan, bytes) for every ring-buffer record, in the
    # consumer thread (keep it cheap: exporter/events.py EventSink enqueues). Set by the Exporter.
    event_sink: object = None
    loaded_at: float = field(default_factory=time.time)
    generation: int = 1          # see exporter/handover.py
    variant: str | None = None   # the [[variants]] entry that runs; None: the program has none
    variants: tuple = ()         # a variants_mod.Verdict for every variant
    attach: AttachTargets = field(default_factory=AttachTargets)   # where XDP/cgroup programs attached

    @property
    def name(self) -> str:
        return self.artifact.name

    def read(self) -> ProgramSnapshot:
        """Read every map once (copying the bytes out of the reusable buffers) and the stats."""
        maps, stats = {}, []
        for name, reader in self.readers.items():
            t0 = time.perf_counter()
            keys, values, n = reader.read()
            maps[name] = MapData(keys.tobytes(), values.tobytes(), n)
            stats.append(MapStat(name, n, reader.max_entries, time.perf_counter() - t0,
                                 fills="array" not in self.obj.maps()[name].type))
        rings = tuple(RingStat(stat.map, stat.events,
                               self._read_global(plan.drops_section, plan.drops) if plan.drops else 0,
                               rb.backlog_bytes(), rb.size, stat.capped_polls)
                      for rb, stat, plan in self.rings)
        return ProgramSnapshot(self, maps, tuple(stats), self.program_stats(), rings)

    def families(self, snap: ProgramSnapshot) -> list[Family]:
        """This program's Prometheus families from one snapshot of its maps."""
        return [c.family(*_view(snap.maps[m])) for c, m in self.collectors]

    def metric_family(self, metric: str) -> Family:
        """One metric's family, read from its map now. LookupError: no such metric."""
        for collector, map_name in self.collectors:
            if collector.spec.name == metric:
                return collector.family(*self.readers[map_name].read())
        raise LookupError(f"{self.artifact.ref} has no metric {metric!r}")

    def limit_series(self, override) -> None:
        """Series limits: `override` (the config's max_series: one number, or metric -> number),
        else the manifest's, else the default."""
        for collector, _map in self.collectors:
            n = override.get(collector.spec.name) if isinstance(override, dict) else override
            collector.set_max_series(n or collector.spec.max_series or DEFAULT_MAX_SERIES)

    def collect(self) -> tuple[list[Family], list[MapStat]]:
        snap = self.read()
        return self.families(snap), list(snap.map_stats)

    def consume_events(self, limit: int) -> bool:
        """Hand on at most `limit` records per ring buffer. -> whether any ring had more."""
        more = False
        for rb, stat, _plan in self.rings:
            _n, capped = rb.consume(limit)
            if capped:
                stat.capped_polls += 1
                more = True
        return more

    def _read_global(self, section: str, sc: schema.Scalar) -> int:
        map_name = self.obj.section_map(section)
        info = self.obj.maps()[map_name]
        raw = libbpf.lookup(self.obj.map_fd(map_name), b"\0\0\0\0", info.value_size) or b""
        return scalar_format([sc], len(raw)).unpack(raw)[0] if len(raw) >= sc.offset + sc.size else 0

    def program_stats(self) -> dict[str, libbpf.KernelStats]:
        return {n: libbpf.prog_stats(fd) for n, fd in self.obj.program_fds().items()}

    def close(self) -> None:
        for rb, _s, _p in self.rings:
            rb.close()
        self.rings.clear()
        self.obj.close()
        shutil.rmtree(self.pin_dir, ignore_errors=True)
        parent = os.path.dirname(self.pin_dir)
        if os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)


def wire(prog: LoadedProgram) -> None:
    obj, ncpus = prog.obj, libbpf.num_possible_cpus()
    maps = obj.maps()
    for mp in prog.plan.metrics:
        map_name = obj.section_map(mp.source) if mp.is_global else mp.source
        info = maps[map_name]
        if map_name not in prog.readers:
            prog.readers[map_name] = libbpf.MapReader(obj.map_fd(map_name), info.key_size, info.value_size,
                                                      info.max_entries, ncpus if mp.percpu else 1)
        if mp.is_global:  # a global reads as one record: the section's whole value
            mp = _as_section_record(mp, info)
        prog.collectors.append((MetricCollector(mp, ncpus), map_name))
    for ev in prog.plan.events:
        stat = RingCounter(ev.map)

        def on_event(data, stat=stat, ev=ev):
            stat.events += 1
            sink = prog.event_sink
            if sink is not None:
                sink(prog, ev, data)
        ring = libbpf.RingBuffer(obj.map_fd(ev.map), on_event, size=maps[ev.map].max_entries)
        prog.rings.append((ring, stat, ev))


def _as_section_record(mp: schema.MetricPlan, info) -> schema.MetricPlan:
    return replace(mp, key_size=info.key_size, value_size=info.value_size, max_entries=1,
                   map_type="global")
