"""What binding a manifest to BTF produces: plans saying where each number sits in map bytes.

core/binding.py makes them; the exporter's collectors, event readers and loaders read them.
"""
from __future__ import annotations

from dataclasses import dataclass

from core import decoders
from core.manifest_model import Manifest, MetricSpec


@dataclass(frozen=True)
class LabelPlan:
    name: str
    source: str           # the key field it comes from ("dev", nested "addr_port")
    offset: int
    size: int
    field: decoders.FieldKind
    decoder: str
    options: dict


@dataclass(frozen=True)
class Scalar:
    """One number inside one CPU's copy of a value."""
    offset: int
    size: int
    signed: bool = False


@dataclass(frozen=True)
class HistPlan:
    offset: int
    elem_size: int
    slots: int
    upper_bounds: tuple[float, ...]   # inclusive `le` bound of slots 0..n-2, scaled; last slot is +Inf
    sum: Scalar | None


@dataclass(frozen=True)
class MetricPlan:
    spec: MetricSpec
    source: str           # map name, or data section (".bss") for globals
    is_global: bool
    map_type: str         # libbpf's name of the map type ("percpu_array", ...); "" for globals
    percpu: bool
    key_size: int
    value_size: int
    max_entries: int
    labels: tuple[LabelPlan, ...]
    merges: bool          # some key fields were dropped: equal label sets are added together
    value: Scalar | None
    hist: HistPlan | None
    # A per-host override of spec.max_series (the exporter config's); None: the manifest's.
    max_series: int | None = None


@dataclass(frozen=True)
class KnobPlan:
    name: str
    section: str
    offset: int
    size: int
    signed: bool
    default: int


@dataclass(frozen=True)
class EventField:
    """One decodable field of an event record: "int" (or "enum") → a number, "string" (a char
    array, up to the first NUL) → text, "bytes" (any other array) → hex."""
    name: str             # flattened like labels: nested struct members join with "_"
    offset: int
    size: int
    kind: str             # "int" | "enum" | "string" | "bytes"
    signed: bool = False
    enum_values: tuple = ()   # enum: ((value, name), ...)


@dataclass(frozen=True)
class EventPlan:
    map: str
    drops: Scalar | None
    drops_section: str
    type: str | None = None          # the manifest's `type`: the BTF struct of one record
    size: int = 0                    # sizeof that struct
    fields: tuple[EventField, ...] = ()
    skipped: tuple[str, ...] = ()    # members that can't be decoded (bitfields, floats, unions)


@dataclass(frozen=True)
class ProgramPlan:
    manifest: Manifest
    metrics: tuple[MetricPlan, ...]
    knobs: tuple[KnobPlan, ...]
    events: tuple[EventPlan, ...]
