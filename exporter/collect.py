"""Map bytes → Prometheus families, following a MetricPlan (pure; no kernel access).

This is the scrape hot path. Values are unpacked column-wise with struct.iter_unpack, and each
key's rendered label string is cached by the key's bytes, so a series costs a dict lookup and
one tuple when its key was seen before. The cache is bounded: it is dropped when it outgrows
`LABEL_CACHE_LIMIT` (decoding again is slower, never wrong).
"""
from __future__ import annotations

import struct

from bpfleet.decoders import DECODERS
from bpfleet.schema import MetricPlan, Scalar
from exporter.exposition import Family, le_label, render_labels

LABEL_CACHE_LIMIT = 200_000
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


class MetricCollector:
    """Turns one metric's map contents into a Family; keeps that metric's label cache."""

    def __init__(self, plan: MetricPlan, ncpus: int):
        self.plan, self.spec = plan, plan.spec
        self.ncpus = ncpus if plan.percpu else 1
        cpu_stride = _round8(plan.value_size) if plan.percpu else plan.value_size
        self.value_stride = cpu_stride * self.ncpus
        self.split_cpus = plan.percpu and self.spec.per_cpu == "cpu"
        self._fields = self._columns(cpu_stride)
        self._format = scalar_format(self._fields, self.value_stride) if self._fields else None
        self._labels: dict[bytes, str] = {}
        if plan.hist:
            self._le = [le_label(b) for b in plan.hist.upper_bounds] + ["+Inf"]

    def _columns(self, cpu_stride: int) -> list[Scalar]:
        """Every number to read per entry: per CPU, the value (or the slots, then the sum)."""
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

    def label_string(self, key: bytes, extra: tuple = ()) -> str:
        pairs = []
        for lp in self.plan.labels:
            raw = key[lp.offset: lp.offset + lp.size]
            value = raw if lp.field.kind == "array" else int.from_bytes(raw, "little", signed=lp.field.signed)
            pairs.append((lp.name, DECODERS[lp.decoder].decode(value, lp.field, lp.options)))
        return render_labels(pairs + list(extra))

    def _cached_labels(self, key: bytes) -> str:
        s = self._labels.get(key)
        if s is None:
            if len(self._labels) >= LABEL_CACHE_LIMIT:
                self._labels.clear()
            s = self._labels[key] = self.label_string(key)
        return s

    def _cached_cpu_labels(self, key: bytes, cpu: int) -> str:
        ck = key + cpu.to_bytes(4, "little")
        s = self._labels.get(ck)
        if s is None:
            if len(self._labels) >= LABEL_CACHE_LIMIT:
                self._labels.clear()
            s = self._labels[ck] = self.label_string(key, (("cpu", str(cpu)),))
        return s

    def family(self, keys: memoryview, values: memoryview, n: int) -> Family:
        kb, ks = keys.tobytes(), self.plan.key_size
        rows = self._format.iter_unpack(values[: n * self.value_stride]) if n else ()
        key_list = [kb[i: i + ks] for i in range(0, n * ks, ks)]
        if self.plan.hist:
            samples = self._hist_samples(key_list, rows)
        elif self.split_cpus:
            samples = self._cpu_samples(key_list, rows)
        else:
            samples = self._scalar_samples(key_list, rows)
        return Family(self.spec.name, self.spec.type, self.spec.help, samples)

    def _scalar_samples(self, key_list, rows) -> list:
        # An array has every slot whether used or not; a zero slot is not a series.
        scale, skip_zero = self.spec.scale, "array" in self.plan.map_type
        labels = self._cached_labels
        if self.ncpus == 1:
            values = [r[0] for r in rows]
        else:
            values = [sum(r) for r in rows]
        if scale != 1.0:
            values = [v * scale for v in values]
        pairs = zip(map(labels, key_list), values)
        if skip_zero:
            pairs = ((lbl, v) for lbl, v in pairs if v)
        # Distinct keys can decode to the same labels (a dropped field, a static table naming two
        # numbers alike, two addresses in one function): one series each, added together.
        merged: dict[str, float] = {}
        get = merged.get
        for lbl, v in pairs:
            merged[lbl] = get(lbl, 0) + v
        return [("", lbl, v) for lbl, v in merged.items()]

    def _cpu_samples(self, key_list, rows) -> list:
        merged: dict[str, float] = {}
        for key, row in zip(key_list, rows):
            for cpu, v in enumerate(row):
                if v:
                    lbl = self._cached_cpu_labels(key, cpu)
                    merged[lbl] = merged.get(lbl, 0) + v * self.spec.scale
        return [("", lbl, v) for lbl, v in merged.items()]

    def _hist_samples(self, key_list, rows) -> list:
        h, ncpus = self.plan.hist, self.ncpus
        per_cpu = h.slots + (1 if h.sum else 0)
        sum_pos = sorted([h.offset, h.sum.offset]).index(h.sum.offset) if h.sum else -1
        merged: dict[str, list] = {}
        for key, row in zip(key_list, rows):
            counts, total = [0] * h.slots, 0
            for c in range(ncpus):
                cell = row[c * per_cpu: (c + 1) * per_cpu]
                if sum_pos == 0:
                    total, cell = total + cell[0], cell[1:]
                elif sum_pos > 0:
                    total, cell = total + cell[-1], cell[:-1]
                counts = [a + b for a, b in zip(counts, cell)]
            if not any(counts):
                continue
            acc = merged.setdefault(self._cached_labels(key), [[0] * h.slots, 0])
            acc[0] = [a + b for a, b in zip(acc[0], counts)]
            acc[1] += total
        samples = []
        for lbl, (counts, total) in merged.items():
            base = lbl[1:-1] + "," if lbl else ""
            running = 0
            for le, cnt in zip(self._le, counts):
                running += cnt
                samples.append(("_bucket", f'{{{base}le="{le}"}}', running))
            if h.sum:
                samples.append(("_sum", lbl, total * self.spec.scale))
            samples.append(("_count", lbl, running))
        return samples
