"""Binding a manifest to its object's BTF: checks, and plans for turning map bytes into series.

Pure: takes the manifest and plain facts about the object (its maps and BTF records), returns
a `ProgramPlan` and every problem found, each naming the manifest file and field.
"""
from __future__ import annotations

from core import btf, decoders, mitigation
from core.layout import Field, flatten_key, member_path, type_name as _type_name
from core.manifest_model import Manifest, MetricSpec
# The plans binding produces live in core/plan.py; imported here by their old address.
from core.plan import (EventField, EventPlan, HistPlan, KnobPlan, LabelPlan,  # noqa: F401
                       MetricPlan, ProgramPlan, Scalar)
from core.problems import Problem

# lpm_trie: a mitigation's prefix list whose values count the packets each prefix matched.
METRIC_MAP_TYPES = {"hash", "array", "percpu_hash", "percpu_array", "lru_hash", "lru_percpu_hash",
                    "lpm_trie"}
GLOBAL_SECTIONS = (".bss", ".data", ".rodata")


class _Binder:
    def __init__(self, manifest: Manifest, maps: dict, records: list, program_types: list[str]):
        self.m, self.maps, self.records, self.program_types = manifest, maps, records, program_types
        self.problems: list[Problem] = []

    def bad(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.m.path, where, message))

    def globals(self) -> dict[str, tuple[str, int, btf.Type]]:
        out = {}
        for section in GLOBAL_SECTIONS:
            for name, (offset, t) in btf.datasec_vars(self.records, section).items():
                out[name] = (section, offset, t)
        return out

    def bind(self) -> ProgramPlan | None:
        self.check_program_types()
        gl = self.globals()
        metrics = tuple(p for s in self.m.metrics if (p := self.metric(s, gl)) is not None)
        knobs = tuple(k for k in (self.knob(s, gl) for s in self.m.knobs.values()) if k)
        if self.m.budget is not None and self.m.budget.degrade is not None:
            self.problems += degrade_problems(self.m.budget.degrade, knobs, self.m.path, "budget.degrade")
        events = tuple(e for e in (self.event(s, gl) for s in self.m.events) if e)
        if self.m.mitigation is not None:
            labels = {p.spec.name: [lp.name for lp in p.labels] for p in metrics}
            self.problems += mitigation.bind_problems(self.m.mitigation, self.maps, labels, self.m.path)
        return None if self.problems else ProgramPlan(self.m, metrics, knobs, events)

    def check_program_types(self) -> None:
        declared = set(self.m.program_types)
        for t in sorted(set(self.program_types) - declared):
            self.bad("requires.program_types", f"the object has {t!r} programs; list {t!r} here")

    def metric(self, s: MetricSpec, gl: dict) -> MetricPlan | None:
        before = len(self.problems)
        if s.global_ is not None:
            plan = self.global_metric(s, gl)
        else:
            plan = self.map_metric(s)
        return plan if len(self.problems) == before else None

    def global_metric(self, s: MetricSpec, gl: dict) -> MetricPlan | None:
        if s.global_ not in gl:
            self.bad(f"{s.where}.global", f"no global variable {s.global_!r} in the object "
                     f"(globals: {', '.join(sorted(gl)) or 'none'})")
            return None
        section, offset, t = gl[s.global_]
        value = self.scalar(t, f"{s.where}.global", offset)
        return MetricPlan(s, section, True, "", False, 4, 0, 1, (), False, value, None)

    def map_metric(self, s: MetricSpec) -> MetricPlan | None:
        info = self.maps.get(s.map)
        if info is None:
            names = sorted(n for n in self.maps if "." not in n)
            self.bad(f"{s.where}.map", f"no map {s.map!r} in the object (maps: {', '.join(names) or 'none'})")
            return None
        if info.type not in METRIC_MAP_TYPES:
            self.bad(f"{s.where}.map", f"map {s.map!r} is a {info.type} map; metrics come from "
                     f"{', '.join(sorted(METRIC_MAP_TYPES))}")
            return None
        if not info.key_type_id or not info.value_type_id:
            self.bad(f"{s.where}.map", f"map {s.map!r} has no BTF key/value types; declare it with "
                     "__type(key, ...) and __type(value, ...)")
            return None
        key_t = btf.resolve(self.records, info.key_type_id)
        value_t = btf.resolve(self.records, info.value_type_id)
        labels, merges = self.labels(s, flatten_key(key_t))
        value = hist = None
        if s.type == "histogram":
            hist = self.hist(s, value_t)
        else:
            value = self.value(s, value_t)
        if s.per_cpu == "cpu" and "percpu" not in info.type:
            self.bad(f"{s.where}.per_cpu", f"map {s.map!r} is not a per-CPU map")
        return MetricPlan(s, s.map, False, info.type, "percpu" in info.type, info.key_size, info.value_size,
                          info.max_entries, labels, merges, value, hist)

    def labels(self, s: MetricSpec, fields: list[Field]) -> tuple[tuple[LabelPlan, ...], bool]:
        by_name = {f.path: f for f in fields}
        for name in s.labels:
            if name not in by_name:
                self.bad(f"{s.where}.labels.{name}", f"the key of map {s.map!r} has no field "
                         f"{name!r} (fields: {', '.join(by_name) or 'none'})")
        plans, merges = [], False
        for f in fields:
            spec = s.labels.get(f.path)
            if spec is not None and spec.drop:
                merges = True
                continue
            where = f"{s.where}.labels.{f.path}"
            if f.kind is None:
                self.bad(where, f"key field {f.path!r} has type {f.type_name}, which can't be a label"
                         " (drop it with drop = true)")
                continue
            decoder = (spec.decoder if spec and spec.decoder else decoders.default_decoder_name(f.kind))
            options = spec.options if spec else {}
            if decoder not in decoders.DECODERS:
                self.bad(f"{where}.decoder", f"unknown decoder {decoder!r} (known: "
                         f"{', '.join(sorted(decoders.DECODERS))})")
                continue
            reason = decoders.DECODERS[decoder].check(f.kind, options)
            if reason:
                self.bad(f"{where}.decoder", f"decoder {decoder!r} does not fit field {f.path!r} "
                         f"({f.type_name}): {reason}")
                continue
            plans.append(LabelPlan(spec.name if spec else f.path, f.path, f.offset, f.kind.size, f.kind,
                                   decoder, options))
        self.check_label_names(s, plans)
        return tuple(plans), merges

    def check_label_names(self, s: MetricSpec, plans: list[LabelPlan]) -> None:
        """Final label names must be unique and leave room for the ones the exporter adds."""
        reserved = {"le"} if s.type == "histogram" else set()
        if s.per_cpu == "cpu":
            reserved.add("cpu")
        seen = set()
        for lp in plans:
            where = f"{s.where}.labels.{lp.source}.name"
            if lp.name in reserved:
                self.bad(where, f"label {lp.name!r} is added by the exporter for this metric; rename it")
            elif lp.name in seen:
                self.bad(where, f"two key fields would both become label {lp.name!r}; rename one")
            seen.add(lp.name)

    def scalar(self, t: btf.Type, where: str, offset: int = 0) -> Scalar | None:
        if isinstance(t, (btf.Int, btf.Enum)) and t.size in (1, 2, 4, 8):
            return Scalar(offset, t.size, t.signed)
        self.bad(where, f"expected an integer, found {_type_name(t)}")
        return None

    def value(self, s: MetricSpec, t: btf.Type) -> Scalar | None:
        where = f"{s.where}.value" if s.value else f"{s.where}.map"
        if s.value is None:
            if isinstance(t, btf.Struct):
                names = ", ".join(m.name for m in t.members)
                self.bad(f"{s.where}.value", f"the value of map {s.map!r} is struct {t.name} "
                         f"({names}): pick the field with value = \"...\"")
                return None
            return self.scalar(t, where)
        found = member_path(t, s.value)
        if found is None:
            self.bad(where, f"the value of map {s.map!r} ({_type_name(t)}) has no field {s.value!r}")
            return None
        offset, ft = found
        return self.scalar(ft, where, offset)

    def hist(self, s: MetricSpec, t: btf.Type) -> HistPlan | None:
        b = s.buckets
        where = f"{s.where}.buckets.field"
        offset, arr = 0, t
        if b.field is not None:
            found = member_path(t, b.field)
            if found is None:
                self.bad(where, f"the value of map {s.map!r} ({_type_name(t)}) has no field {b.field!r}")
                return None
            offset, arr = found
        if not (isinstance(arr, btf.Array) and isinstance(arr.elem, btf.Int) and arr.elem.size in (4, 8)):
            self.bad(where, f"expected an array of u32/u64 counters, found {_type_name(arr)}")
            return None
        total = None
        if s.sum is not None:
            found = member_path(t, s.sum)
            if found is None:
                self.bad(f"{s.where}.sum", f"the value of map {s.map!r} has no field {s.sum!r}")
            else:
                total = self.scalar(found[1], f"{s.where}.sum", found[0])
        return HistPlan(offset, arr.elem.size, arr.length,
                        upper_bounds(b, arr.length, s.scale), total)

    def knob(self, k, gl: dict) -> KnobPlan | None:
        where = f"knobs.{k.name}"
        if k.name not in gl or gl[k.name][0] != ".rodata":
            self.bad(where, f"no `const volatile` global {k.name!r} in the object's .rodata")
            return None
        section, offset, t = gl[k.name]
        sc = self.scalar(t, where, offset)
        return KnobPlan(k.name, section, offset, sc.size, sc.signed, int(k.default)) if sc else None

    def event(self, e, gl: dict) -> EventPlan | None:
        info = self.maps.get(e.map)
        if info is None or info.type != "ringbuf":
            self.bad(f"{e.where}.map", f"no ring buffer map {e.map!r} in the object")
            return None
        layout = self.event_layout(e) if e.type else {}
        if layout is None:
            return None
        if e.drops is None:
            return EventPlan(e.map, None, "", **layout)
        if e.drops not in gl:
            self.bad(f"{e.where}.drops", f"no global variable {e.drops!r} in the object")
            return None
        section, offset, t = gl[e.drops]
        sc = self.scalar(t, f"{e.where}.drops", offset)
        return EventPlan(e.map, sc, section, **layout) if sc else None

    def event_layout(self, e) -> dict | None:
        """The record struct `e.type` from the BTF, flattened into decodable fields."""
        ids = [i for i, r in enumerate(self.records)
               if r is not None and r.kind == "struct" and r.name == e.type]
        if not ids:
            structs = sorted({r.name for r in self.records if r is not None and r.kind == "struct" and r.name})
            shown = ", ".join(structs[:20]) + (", ..." if len(structs) > 20 else "")
            self.bad(f"{e.where}.type", f"no struct {e.type!r} in the object's BTF (structs: {shown or 'none'}); "
                     "clang leaves out a struct used only through local pointers: reference it from a "
                     f"global, e.g. `const struct {e.type} *const {e.type}_btf = 0;`")
            return None
        t = btf.resolve(self.records, ids[0])
        fields, skipped = [], []
        for f in flatten_key(t):
            k = f.kind
            if k is None:
                skipped.append(f.path)
            elif k.kind == "array":
                fields.append(EventField(f.path, f.offset, k.size, "string" if k.is_char else "bytes"))
            elif k.kind == "enum":
                fields.append(EventField(f.path, f.offset, k.size, "enum", k.signed,
                                         tuple(sorted(k.enum_values.items()))))
            elif k.size in (1, 2, 4, 8):
                fields.append(EventField(f.path, f.offset, k.size, "int", k.signed))
            else:
                skipped.append(f.path)
        if not fields:
            self.bad(f"{e.where}.type", f"struct {e.type!r} has no field that can be decoded "
                     "(integers, enums, arrays)")
            return None
        return {"type": e.type, "size": t.size, "fields": tuple(fields), "skipped": tuple(skipped)}


def degrade_problems(degrade, knobs, path: str, where: str) -> list[Problem]:
    """Does the budget's degrade step name a knob of the object, with values that fit it?"""
    by_name = {k.name: k for k in knobs}
    k = by_name.get(degrade.knob)
    if k is None:
        return [Problem(path, f"{where}.knob", f"no knob {degrade.knob!r} in the object "
                        f"(knobs: {', '.join(sorted(by_name)) or 'none'})")]
    lo, hi = (-(1 << (8 * k.size - 1)), (1 << (8 * k.size - 1)) - 1) if k.signed else (0, (1 << (8 * k.size)) - 1)
    return [Problem(path, f"{where}.values[{i}]", f"{v} does not fit knob {k.name!r} "
                    f"({'signed' if k.signed else 'unsigned'} {k.size * 8}-bit)")
            for i, v in enumerate(degrade.values) if not lo <= v <= hi]


def upper_bounds(b, slots: int, scale: float) -> tuple[float, ...]:
    """Inclusive upper bound of every slot but the last (which is +Inf), in scaled units.

    log2: slot 0 holds 0, slot s >= 1 holds (2^(s-2), 2^(s-1)]. linear: slot i holds integers in
    [min + i*width, min + (i+1)*width), so its inclusive bound is min + (i+1)*width - 1."""
    if b.scheme == "log2":
        raw = [0 if s == 0 else 2 ** (s - 1) for s in range(slots - 1)]
    else:
        raw = [b.min + (i + 1) * b.width - 1 for i in range(slots - 1)]
    return tuple(r * scale for r in raw)


def bind(manifest: Manifest, maps: dict, records: list,
         program_types: list[str]) -> tuple[ProgramPlan | None, list[Problem]]:
    b = _Binder(manifest, maps, records, program_types)
    try:
        plan = b.bind()
    except btf.BtfError as e:
        b.bad("", f"object BTF: {e}")
        plan = None
    return plan, b.problems
