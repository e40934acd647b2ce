"""What a parsed manifest is: the data classes core/manifest.py fills in (one per section).

Kept apart from the parser so that code which only reads manifests sees the shapes at a glance.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.manifest_portability import BccSpec, VariantSpec
from core.mitigation import MitigationSpec


@dataclass(frozen=True)
class LabelSpec:
    field: str
    name: str
    decoder: str | None       # None: the default for the field's type
    options: dict
    drop: bool = False


@dataclass(frozen=True)
class BucketSpec:
    scheme: str
    field: str | None         # value field holding the slot array; None when the value is the array
    min: float = 0
    width: float = 1


@dataclass(frozen=True)
class MetricSpec:
    where: str                # "metrics[0]": the field path prefix for problems
    name: str
    type: str
    help: str
    map: str | None = None
    global_: str | None = None
    value: str | None = None
    scale: float = 1.0
    per_cpu: str = "sum"
    labels: dict = field(default_factory=dict)   # key field -> LabelSpec
    buckets: BucketSpec | None = None
    sum: str | None = None
    max_series: int | None = None   # None: the exporter's default (core/limits.py)


@dataclass(frozen=True)
class KnobSpec:
    name: str
    default: int | bool
    description: str = ""


@dataclass(frozen=True)
class EventSpec:
    where: str
    map: str
    drops: str | None = None
    type: str | None = None   # the BTF struct of one record (for decoding events)


@dataclass(frozen=True)
class DegradeSpec:
    knob: str
    values: tuple[int, ...]   # stepped through in order, one step per breach


@dataclass(frozen=True)
class BudgetSpec:
    """Kernel cost a program may take (docs/manifest.md#budget; core/budget.py judges it)."""
    ns_per_event: float | None = None   # average kernel ns per run, for every BPF program
    cpu_share: float | None = None      # all its BPF programs together, in CPUs (0.02 = 2% of one)
    degrade: DegradeSpec | None = None


@dataclass(frozen=True)
class Manifest:
    path: str
    name: str
    version: str
    description: str
    license: str
    program_types: tuple[str, ...] = ()
    knobs: dict = field(default_factory=dict)     # name -> KnobSpec
    metrics: tuple[MetricSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()
    budget: BudgetSpec | None = None
    variants: tuple[VariantSpec, ...] = ()   # best first; () = one object, every program
    bcc: BccSpec | None = None               # set: a bcc-source program (<name>.bcc.c)
    mitigation: MitigationSpec | None = None   # docs/mitigations.md
