"""The series model: label sets as data, and the samples every output renders (pure).

A LabelSet is label names and values. Each output asks it for its own encoding — `text`
(Prometheus `{a="x"}`, made with it), `proto` (protobuf Metric.label fields) or `attributes`
(OTel), made on first use — kept on the object: a label set that lives from scrape to scrape is
encoded once per output, not once per scrape. Family and HistogramSeries are the sample model the exposition
renderers (exporter/exposition/) and the OTLP bridge (exporter/otlp/metrics.py) take, as
client_python's samples.py is for its renderers.

Label sets of map keys are interned by a LabelCache per metric (exporter/collect.py): within it,
equal label sets are one object, so the hot path may compare them by identity. Everywhere else
they compare by value. LABEL_CACHE_LIMIT bounds every label cache.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat

LABEL_CACHE_LIMIT = 200_000


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def label_fragment(name: str, value: str) -> str:
    """One label in the text format: name="escaped value"."""
    return f'{name}="{escape_label_value(value)}"'


def _pb_len(n: int) -> bytes:
    """A protobuf length prefix (base-128 varint)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _pb_label(name: str, value: str) -> bytes:
    """Metric.label (field 1) holding LabelPair{name=1, value=2} (client_model metrics.proto)."""
    n, v = name.encode(), value.encode()
    pair = b"\x0a" + _pb_len(len(n)) + n + b"\x12" + _pb_len(len(v)) + v
    return b"\x0a" + _pb_len(len(pair)) + pair


class LabelSet:
    """Label names and values (unescaped strings, in exposition order).

    `text` is made with the label set (decoders pass it in, joined from cached fragments);
    `proto` and `attributes` on first use, then kept. The attributes dict is shared by every
    reader: do not modify it. No __getattr__, __len__ or __bool__: each would slow down every
    attribute read or truth test of the hot path (collect.py, the renderers)."""

    __slots__ = ("names", "values", "text", "_proto", "_attributes", "_hash")

    def __init__(self, names: tuple[str, ...] = (), values: tuple[str, ...] = (), text: str | None = None):
        self.names, self.values = names, values
        if text is None:
            inner = ",".join(map(label_fragment, names, values))
            text = f"{{{inner}}}" if inner else ""
        self.text = text
        # _proto, _attributes and _hash stay unset until asked for (fewer stores per new key)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> LabelSet:
        pairs = tuple(pairs)
        return cls(tuple(n for n, _v in pairs), tuple(str(v) for _n, v in pairs))

    @property
    def proto(self) -> bytes:
        """The Metric.label fields (LabelPair messages) of the protobuf exposition."""
        try:
            return self._proto
        except AttributeError:
            p = self._proto = b"".join(map(_pb_label, self.names, self.values))
            return p

    @property
    def attributes(self) -> dict[str, str]:
        """OTel data point attributes."""
        try:
            return self._attributes
        except AttributeError:
            a = self._attributes = dict(zip(self.names, self.values))
            return a

    def pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.names, self.values))

    def get(self, name: str, default: str | None = None) -> str | None:
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            return default

    def with_label(self, name: str, value: str) -> LabelSet:
        return LabelSet(self.names + (name,), self.values + (value,))

    def without(self, name: str) -> LabelSet:
        return LabelSet.of(p for p in self.pairs() if p[0] != name)

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:
            h = self._hash = hash((self.names, self.values))
            return h

    def __eq__(self, other) -> bool:
        return self is other or (other.__class__ is LabelSet and self.values == other.values
                                 and self.names == other.names)

    def __lt__(self, other: LabelSet) -> bool:
        return self.text < other.text

    def __repr__(self) -> str:
        return f"LabelSet({self.text or '{}'})"


EMPTY = LabelSet()


def labels(**values) -> LabelSet:
    """labels(program="exec", map="events"): a label set in keyword order."""
    return LabelSet(tuple(values), tuple(str(v) for v in values.values()))


class LabelCache:
    """Map key bytes -> interned LabelSet, for one metric's decoder.

    Interned: a label set made while an equal one is cached is that one, so equal label sets
    of this cache are one object (label sets of different keys compare by `is`). Bounded:
    past LABEL_CACHE_LIMIT keys it keeps only those of the latest lookup (`lookup`)."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.by_key: dict[bytes, LabelSet] = {}
        self._interned: dict[tuple, LabelSet] = {}
        self.aliased = False     # some two cached keys share a label set

    def __len__(self) -> int:
        return len(self.by_key)

    def lookup(self, keys: list[bytes], make) -> list[LabelSet]:
        """The label set of every (distinct) key; `make(keys)` -> (values tuples, texts) of
        keys not cached, in the order of `names`."""
        cache = self.by_key
        out = list(map(cache.get, keys))
        if all(out):    # C speed: a LabelSet is always true, and `None in out` would call __eq__
            return out
        missing = [k for k, s in zip(keys, out) if s is None]
        if len(cache) + len(missing) > LABEL_CACHE_LIMIT:
            self._restart({k: s for k, s in zip(keys, out) if s is not None})
            cache = self.by_key
        values, texts = make(missing)
        interned = self._interned
        grown = len(interned)
        # setdefault keeps the label set already interned for equal values (C speed, no loop)
        sets = list(map(interned.setdefault, values, map(LabelSet, repeat(self.names), values, texts)))
        if len(interned) - grown < len(sets):
            self.aliased = True
        cache.update(zip(missing, sets))
        return list(map(cache.__getitem__, keys))

    def _restart(self, keep: dict) -> None:
        self.by_key = keep
        self._interned = {ls.values: ls for ls in keep.values()}
        self.aliased = len(self._interned) < len(keep)

    def forget(self) -> None:
        self._restart({})


@dataclass
class HistogramSeries:
    """One histogram series, in the form every output takes it from."""
    labels: LabelSet                      # without `le`
    buckets: list[tuple[float, int]]      # (inclusive upper bound, cumulative count), ascending, last +Inf
    count: int
    sum: float | None                     # None: the program keeps no sum (text: no _sum line)
    native: object | None = None          # core.histograms.Native: protobuf adds native buckets


@dataclass
class Family:
    """One metric family. Scalar series come in two shapes, rendered alike: `samples`, tuples
    that may carry a suffix (hand-built families: the exporter's own metrics), and the columns
    `labels` + `values` (a collector's map-sized output: series i is labels[i] = values[i]).
    Columns make no object per series per scrape, which keeps a 100k-series scrape cheap for
    the allocator and the garbage collector alike."""
    name: str  # as exposed, e.g. "syscalls_total"; the TYPE line carries it whole
    type: str  # "counter" | "gauge" | "histogram" | "untyped"
    help: str
    samples: list[tuple[str, LabelSet, float | int]] = field(default_factory=list)   # (suffix, labels, value)
    # Histogram families may carry their series here instead of (or besides) text samples.
    histograms: list[HistogramSeries] | None = None
    labels: list[LabelSet] = field(default_factory=list)
    values: list = field(default_factory=list)

    def scalars(self) -> Iterator[tuple[LabelSet, float | int]]:
        """(labels, value) of every scalar series: the unsuffixed samples, then the columns."""
        yield from ((ls, v) for suffix, ls, v in self.samples if not suffix)
        yield from zip(self.labels, self.values)

    def all_samples(self) -> list[tuple[str, LabelSet, float | int]]:
        """`samples` and the columns, as (suffix, labels, value) tuples (not for the hot path)."""
        return self.samples + [("", ls, v) for ls, v in zip(self.labels, self.values)]
