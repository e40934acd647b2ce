"""What the dashboard generator needs to know about a program, taken from its ProgramPlan.

The label names a metric has in Prometheus are the key struct's field names after the manifest's
renames and drops, which only the object's BTF knows: so the input is the bound plan
(`orchestrator.build.check_manifest_against`), not the bare manifest. Pure: plan in, view out.
"""
from __future__ import annotations

from dataclasses import dataclass

METRIC_TYPES = ("counter", "gauge", "histogram")


@dataclass(frozen=True)
class MetricView:
    name: str                       # the family name (histograms: without _bucket/_sum/_count)
    type: str                       # counter | gauge | histogram
    help: str
    labels: tuple[str, ...] = ()    # label names as Prometheus sees them (no `le`)
    has_sum: bool = False           # histograms: a _sum series exists (manifest `sum`)


@dataclass(frozen=True)
class KnobView:
    name: str
    default: int | bool
    description: str = ""


@dataclass(frozen=True)
class ProgramView:
    name: str
    description: str
    metrics: tuple[MetricView, ...] = ()
    ring_buffers: tuple[str, ...] = ()     # BPF_MAP_TYPE_RINGBUF maps ([[events]])
    knobs: tuple[KnobView, ...] = ()
    hash_maps: bool = False               # any metric map that can fill up (arrays can't)


def metric_view(mp) -> MetricView:
    """A schema.MetricPlan -> MetricView."""
    s = mp.spec
    labels = tuple(lp.name for lp in mp.labels)
    if s.per_cpu == "cpu" and mp.percpu:
        labels += ("cpu",)            # added by the exporter (exporter/collect.py)
    return MetricView(s.name, s.type, s.help, labels, s.type == "histogram" and s.sum is not None)


def from_plan(plan) -> ProgramView:
    """A schema.ProgramPlan (a manifest bound to its object's BTF) -> ProgramView."""
    m = plan.manifest
    return ProgramView(
        name=m.name,
        description=m.description,
        metrics=tuple(metric_view(mp) for mp in plan.metrics),
        ring_buffers=tuple(e.map for e in plan.events),
        knobs=tuple(KnobView(k.name, k.default, k.description) for k in m.knobs.values()),
        hash_maps=any("hash" in mp.map_type for mp in plan.metrics),
    )


def from_bcc_manifest(m) -> ProgramView:
    """A bcc-source program's manifest -> ProgramView, without compiling it (no kernel headers
    needed): its labels are the manifest's labels.<field> entries, which for bcc programs must
    name every key field (exporter/load/bcc_source.py checks that against the compiled tables)."""
    metrics = []
    for s in m.metrics:
        labels = tuple(lp.name for lp in s.labels.values() if not lp.drop)
        metrics.append(MetricView(s.name, s.type, s.help, labels, s.type == "histogram" and s.sum is not None))
    return ProgramView(name=m.name, description=m.description, metrics=tuple(metrics),
                       ring_buffers=tuple(e.map for e in m.events), hash_maps=True)
