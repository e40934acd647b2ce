"""Per-metric series limits: a label like pid or comm must not explode a scrape (or the
Prometheus server behind it). Pure; used by exporter/collect.py on every family it builds, for
/metrics and OTLP alike.

A metric may have at most `max_series` label sets (histograms: one per label set, whatever the
number of buckets). Beyond that, `max_series - 1` label sets are exported as they are and the
rest are added together into one overflow series whose labels all read "__overflow__", so a
metric never has more than `max_series` series, the label names stay the same (queries and
dashboards keep working) and sums over the metric stay right.

Which label sets keep their own series: the ones admitted before stay admitted while their keys
stay in the map (sticky, so a series does not flap in and out of the overflow from scrape to
scrape); free room goes to new label sets in map order. The cost is nothing below the limit
(a length check) and O(series) above it.
"""
from __future__ import annotations

import math

from core.series import LabelSet

DEFAULT_MAX_SERIES = 10_000
OVERFLOW = "__overflow__"


def effective_max_series(plan) -> int:
    """The limit for a MetricPlan: the host's override, else the manifest's, else the default."""
    if getattr(plan, "max_series", None):
        return plan.max_series
    return plan.spec.max_series or DEFAULT_MAX_SERIES


def _total(values: list):
    """Integers add exactly; floats (scaled values) with fsum, which is exact whatever the order
    (map order changes between scrapes, and an overflow counter must never appear to go down)."""
    return math.fsum(values) if values and isinstance(values[0], float) else sum(values)


def overflow_labels(names) -> LabelSet:
    names = tuple(names)
    return LabelSet(names, (OVERFLOW,) * len(names))


class SeriesLimit:
    """The limit of one metric, and what it folded.

    folded        label sets in the overflow series in the latest family built (a gauge)
    dropped_total label sets that went into the overflow series and were not in it the time
                  before: new series the limit kept out (a counter)
    """

    def __init__(self, max_series: int, label_names=()):
        if max_series < 1:
            raise ValueError(f"max_series must be positive, got {max_series}")
        self.max = max_series
        self.overflow = overflow_labels(list(label_names))
        self.folded = 0
        self.dropped_total = 0
        self._admitted: set[LabelSet] = set()
        self._folded_before: set[LabelSet] = set()

    def _keep(self, labels) -> set[LabelSet]:
        room = self.max - 1          # one series is the overflow
        keep = self._admitted.intersection(labels)
        if len(keep) > room:         # the limit was lowered
            keep = set(sorted(keep)[:room])
        if len(keep) < room:
            for lbl in labels:
                if lbl not in keep:
                    keep.add(lbl)
                    if len(keep) >= room:
                        break
        self._admitted = keep
        return keep

    def _count(self, folded: set[LabelSet]) -> None:
        self.folded = len(folded)
        self.dropped_total += len(folded - self._folded_before)
        self._folded_before = folded

    def _under(self) -> None:
        if self.folded:
            self.folded = 0
            self._folded_before = set()

    def columns(self, labels: list, values: list) -> tuple[list, list]:
        """Distinct label sets and their values -> at most `max` of them (the same lists when
        they are within the limit)."""
        if len(labels) <= self.max:
            self._under()
            return labels, values
        keep = self._keep(labels)
        kept_labels, kept_values, rest = [], [], []
        for lbl, v in zip(labels, values):
            if lbl in keep:
                kept_labels.append(lbl)
                kept_values.append(v)
            else:
                rest.append(v)
        folded = set(labels)
        folded -= keep
        self._count(folded)
        total = _total(rest)
        # A real series whose labels all read __overflow__ would collide: add it in.
        for i, lbl in enumerate(kept_labels):
            if lbl == self.overflow:
                kept_values[i] += total
                return kept_labels, kept_values
        return kept_labels + [self.overflow], kept_values + [total]

    def samples(self, samples: list) -> list:
        """(suffix, labels, value) samples with distinct labels -> at most `max` of them."""
        if len(samples) <= self.max:
            self._under()
            return samples
        labels, values = self.columns([s[1] for s in samples], [s[2] for s in samples])
        return [("", lbl, v) for lbl, v in zip(labels, values)]

    def merged(self, merged: dict) -> dict:
        """Histogram label set -> [slot counts, sum] -> at most `max` label sets."""
        if len(merged) <= self.max:
            self._under()
            return merged
        keep = self._keep(list(merged))
        out, folded, counts, total = {}, set(), None, 0
        for lbl, (c, t) in merged.items():
            if lbl in keep:
                out[lbl] = [c, t]
                continue
            folded.add(lbl)
            counts = list(c) if counts is None else [a + b for a, b in zip(counts, c)]
            total += t
        acc = out.get(self.overflow)
        if acc is None:
            out[self.overflow] = [counts, total]
        else:
            acc[0] = [a + b for a, b in zip(acc[0], counts)]
            acc[1] += total
        self._count(folded)
        return out
