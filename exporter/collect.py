"""Map bytes → Prometheus families, following a MetricPlan (pure; no kernel access).

This is the scrape hot path (see docs/performance.md). Keys and values are unpacked a column at
a time with struct.iter_unpack; each key's label set (core/series.py LabelSet) is cached by the
key's bytes, so a series whose key was seen before costs one dict lookup. New keys are decoded a
label field at a time, each decoder running once per distinct field value, and their text is
joined from cached `name="value"` fragments. Both caches are bounded: past series.LABEL_CACHE_LIMIT
they keep only what the current scrape used.
"""
from __future__ import annotations

import struct
from dataclasses import replace

from core.binding import LabelPlan, MetricPlan, Scalar
from core.decoders import DECODERS
from core.histograms import prometheus_series, why_not_exponential
from core.limits import SeriesLimit, effective_max_series
from core import series
from core.series import Family, HistogramSeries, LabelCache, LabelSet, label_fragment
_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
          (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


def _round8(n: int) -> int:
    return (n + 7) & ~7


def scalar_format(scalars: list[Scalar], stride: int) -> struct.Struct:
    """A struct format reading `scalars` (ascending offsets) out of each `stride`-byte record."""
    fmt, pos = "<", 0
    for s in scalars:
        fmt += f"{s.offset - pos}x" if s.offset > pos else ""
        fmt += _CODES[(s.size, s.signed)]
        pos = s.offset + s.size
    return struct.Struct(fmt + (f"{stride - pos}x" if stride > pos else ""))


class LabelDecoder:
    """Key bytes -> LabelSet, cached per key (core.series.LabelCache) and per field value.
    `extra`: a (name, value) label every set ends with (the cpu of per-CPU series)."""

    def __init__(self, labels: tuple[LabelPlan, ...], extra: tuple[str, str] | None = None):
        self.labels, self.extra = labels, extra
        self.cache = LabelCache(tuple(lp.name for lp in labels) + ((extra[0],) if extra else ()))
        self._extra_fragment = label_fragment(*extra) if extra else ""
        self._by_field: list[dict[bytes, tuple[str, str]]] = [{} for _ in labels]

    def field(self, i: int, raws: list[bytes]) -> list[tuple[str, str]]:
        """(value, `name="value"` fragment) of label field i for each of its raw bytes; the
        decoder runs once per distinct value."""
        memo = self._by_field[i]
        out = list(map(memo.get, raws))
        if all(out):
            return out
        lp, fresh = self.labels[i], {}
        for raw in {r for r, vf in zip(raws, out) if vf is None}:
            value = raw if lp.field.kind == "array" else int.from_bytes(raw, "little", signed=lp.field.signed)
            text = DECODERS[lp.decoder].decode(value, lp.field, lp.options)
            fresh[raw] = (text, label_fragment(lp.name, text))
        limit = series.LABEL_CACHE_LIMIT
        if len(memo) + len(fresh) > limit:
            memo.clear()
        if len(fresh) <= limit:   # else this scrape's values alone are too many to keep
            memo.update(fresh)
        return [vf or fresh[r] for r, vf in zip(raws, out)]

    def column(self, i: int, keys: list[bytes]) -> tuple[list[str], list[str]]:
        """The values and the `name="value"` fragments of label field i for every key."""
        lp = self.labels[i]
        if lp.decoder == "uint" and lp.field.kind == "int" and keys:
            # Numbers need no decoder call and no escaping: unpack the whole column at once.
            st = struct.Struct(f"<{lp.offset}x{_CODES[(lp.size, lp.field.signed)]}"
                               f"{len(keys[0]) - lp.offset - lp.size}x")
            values = [str(v) for (v,) in st.iter_unpack(b"".join(keys))]
            return values, [f'{lp.name}="{v}"' for v in values]
        start, end = lp.offset, lp.offset + lp.size
        pairs = self.field(i, [k[start:end] for k in keys])
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def decode(self, keys: list[bytes]) -> tuple[list[tuple], list[str]]:
        """Values tuples and texts of keys not seen before, one label field (column) at a time."""
        values, fragments = [], []
        for i in range(len(self.labels)):
            v, f = self.column(i, keys)
            values.append(v)
            fragments.append(f)
        if self.extra:
            values.append([self.extra[1]] * len(keys))
            fragments.append([self._extra_fragment] * len(keys))
        if not values:
            return [()] * len(keys), [""] * len(keys)
        if len(fragments) == 1:
            texts = [f"{{{a}}}" for a in fragments[0]]
        elif len(fragments) == 2:
            texts = [f"{{{a},{b}}}" for a, b in zip(*fragments)]
        else:
            texts = ["{" + ",".join(parts) + "}" for parts in zip(*fragments)]
        return list(zip(*values)), texts

    def __call__(self, keys: list[bytes]) -> list[LabelSet]:
        return self.cache.lookup(keys, self.decode)

    def __len__(self) -> int:
        return len(self.cache)

    def forget(self) -> None:
        self.cache.forget()
        for memo in self._by_field:
            memo.clear()


def _add_up(labels: list[LabelSet], values: list, aliased: bool) -> tuple[list, list]:
    """One value per label set. Distinct keys can decode alike (a dropped field, a static
    table naming two numbers the same, two addresses in one function): those are added.
    Equal label sets of one decoder are one object (LabelCache), so `aliased` false means
    there is nothing to add, and merging goes by identity."""
    if not aliased:
        return labels, values
    merged: dict[int, list] = {}
    for lbl, v in zip(labels, values):
        acc = merged.get(id(lbl))
        if acc is None:
            merged[id(lbl)] = [lbl, v]
        else:
            acc[1] += v
    return [a[0] for a in merged.values()], [a[1] for a in merged.values()]


class MetricCollector:
    """Turns one metric's map contents into a Family."""

    def __init__(self, plan: MetricPlan, ncpus: int):
        self.plan, self.spec = plan, plan.spec
        self.ncpus = ncpus if plan.percpu else 1
        cpu_stride = _round8(plan.value_size) if plan.percpu else plan.value_size
        self.value_stride = cpu_stride * self.ncpus
        self.split_cpus = plan.percpu and self.spec.per_cpu == "cpu"
        self._columns = self._value_columns(cpu_stride)
        self._format = scalar_format(self._columns, self.value_stride)
        self._key_format = struct.Struct(f"{plan.key_size}s")
        # An array has every slot whether used or not; a zero slot is not a series.
        self._skip_zero = "array" in plan.map_type
        self.labels = LabelDecoder(plan.labels)
        if self.split_cpus:
            self._cpu_labels = [LabelDecoder(plan.labels, ("cpu", str(c))) for c in range(self.ncpus)]
        if plan.hist:
            # Native buckets only where they are exact for every possible count (histograms.py).
            self._native = why_not_exponential(self.spec.buckets, plan.hist.slots, self.spec.scale) is None
        self.set_max_series(effective_max_series(plan))

    def set_max_series(self, n: int) -> None:
        """Series limit (core/limits.py). Kept in the plan too, so that collectors built
        from this one's plan (the OTLP export's) get the same limit."""
        if n != effective_max_series(self.plan):
            self.plan = replace(self.plan, max_series=n)
        if getattr(self, "limit", None) is not None and self.limit.max == n:
            return
        names = [lp.name for lp in self.plan.labels] + (["cpu"] if self.split_cpus else [])
        self.limit = SeriesLimit(n, names)

    def _value_columns(self, cpu_stride: int) -> list[Scalar]:
        """Every number to read per entry: per CPU, the value (or the slots and the sum)."""
        per_cpu: list[Scalar] = []
        if self.plan.value:
            per_cpu = [self.plan.value]
        elif self.plan.hist:
            h = self.plan.hist
            per_cpu = [Scalar(h.offset + i * h.elem_size, h.elem_size) for i in range(h.slots)]
            if h.sum:
                per_cpu.append(h.sum)
            per_cpu.sort(key=lambda s: s.offset)
        return [Scalar(s.offset + c * cpu_stride, s.size, s.signed)
                for c in range(self.ncpus) for s in per_cpu]

    def forget_labels(self) -> None:
        self.labels.forget()
        for d in getattr(self, "_cpu_labels", ()):
            d.forget()

    def cached_label_sets(self) -> int:
        return sum(len(d) for d in [self.labels, *getattr(self, "_cpu_labels", ())])

    def family(self, keys: memoryview, values: memoryview, n: int) -> Family:
        key_list = [k for (k,) in self._key_format.iter_unpack(memoryview(keys).cast("B")[: n * self.plan.key_size])]
        values = memoryview(values).cast("B")[: n * self.value_stride]
        if self.plan.hist:
            series = self._hist_series(key_list, self._format.iter_unpack(values))
            return Family(self.spec.name, self.spec.type, self.spec.help, [], histograms=series)
        if self.split_cpus:
            labels, column = self._cpu_samples(key_list, self._format.iter_unpack(values))
        else:
            labels, column = self._scalar_samples(key_list, values)
        labels, column = self.limit.columns(labels, column)
        return Family(self.spec.name, self.spec.type, self.spec.help, labels=labels, values=column)

    def _scalar_column(self, values: memoryview) -> list:
        if self._format.format == "<Q":  # plain u64 per entry: no unpacking at all
            return values.cast("Q").tolist()
        if self.ncpus == 1:
            return [r[0] for r in self._format.iter_unpack(values)]
        return [sum(r) for r in self._format.iter_unpack(values)]

    def _scalar_samples(self, key_list: list[bytes], values: memoryview) -> tuple[list, list]:
        column = self._scalar_column(values)
        if self._skip_zero:
            kept = [i for i, v in enumerate(column) if v]
            key_list, column = [key_list[i] for i in kept], [column[i] for i in kept]
        scale = self.spec.scale
        if scale != 1.0:
            column = [v * scale for v in column]
        return _add_up(self.labels(key_list), column, self.labels.cache.aliased)

    def _cpu_samples(self, key_list: list[bytes], rows) -> tuple[list, list]:
        rows = list(rows)
        labels, column = [], []
        for cpu, decoder in enumerate(self._cpu_labels):
            keys = [k for k, r in zip(key_list, rows) if r[cpu]]
            labels += decoder(keys)
            column += [r[cpu] * self.spec.scale for r in rows if r[cpu]]
        return _add_up(labels, column, any(d.cache.aliased for d in self._cpu_labels))

    def _hist_series(self, key_list: list[bytes], rows) -> list[HistogramSeries]:
        h, ncpus = self.plan.hist, self.ncpus
        per_cpu = h.slots + (1 if h.sum else 0)
        sum_first = bool(h.sum) and h.sum.offset < h.offset
        merged: dict[LabelSet, list] = {}
        for lbl, row in zip(self.labels(key_list), rows):
            counts, total = [0] * h.slots, 0
            for c in range(ncpus):
                cell = row[c * per_cpu: (c + 1) * per_cpu]
                if h.sum:
                    total += cell[0] if sum_first else cell[-1]
                    cell = cell[1:] if sum_first else cell[:-1]
                counts = [a + b for a, b in zip(counts, cell)]
            if not any(counts):
                continue
            acc = merged.setdefault(lbl, [[0] * h.slots, 0])
            acc[0] = [a + b for a, b in zip(acc[0], counts)]
            acc[1] += total
        merged = self.limit.merged(merged)
        return [prometheus_series(lbl, counts, total if h.sum else None,
                                  self.spec.buckets, self.spec.scale, self._native)
                for lbl, (counts, total) in merged.items()]
