"""What changed between two scrapes, for `bpfleet top`: counter increases (with resets),
histogram bucket deltas, quantile estimates, and the interval's buckets as bcc-style rows.
Pure functions on numbers; model.py builds the view from them."""
from __future__ import annotations

import math
from dataclasses import dataclass

from bpfleet.top.scrape import Hist
from bpfleet.top.units import count_text, human

BAR_WIDTH = 40               # bcc's histogram width
INF = float("inf")


@dataclass
class BucketRow:
    lower: float                   # the bucket holds values in (lower, upper]
    upper: float
    range: str                     # "1µs -> 2µs", "4KiB -> 8KiB", "0" for the le="0" bucket
    count: float                   # observations in the interval
    bar: str                       # bcc's stars: int(count * 40 / max count)



def counter_delta(prev: float | None, cur: float) -> tuple[float, bool]:
    """Increase of a counter -> (delta, reset). A counter that went down restarted from 0
    (exporter restart, program reload): its whole current value is the increase, as
    Prometheus' rate() counts it. A series absent before is new and counts from 0 too."""
    if prev is None or math.isnan(prev):
        return cur, False
    if cur < prev:
        return cur, True
    return cur - prev, False


def hist_delta(prev: Hist | None, cur: Hist) -> tuple[list, float, float | None, bool]:
    """-> (cumulative bucket deltas [(le, n)], count delta, sum delta, reset).
    Any bucket or the count going down, or the bucket layout changing, is a restart."""
    cur_count = cur.count if cur.count is not None else (cur.buckets[-1][1] if cur.buckets else 0.0)
    if prev is None:
        return list(cur.buckets), cur_count, cur.sum, False
    prev_count = prev.count if prev.count is not None else (prev.buckets[-1][1] if prev.buckets else 0.0)
    same_layout = [le for le, _ in prev.buckets] == [le for le, _ in cur.buckets]
    went_down = cur_count < prev_count or (same_layout and any(
        c < p for (_, p), (_, c) in zip(prev.buckets, cur.buckets)))
    if not same_layout or went_down:
        return list(cur.buckets), cur_count, cur.sum, True
    buckets = [(le, c - p) for (le, p), (_, c) in zip(prev.buckets, cur.buckets)]
    dsum = None if cur.sum is None or prev.sum is None else cur.sum - prev.sum
    return buckets, cur_count - prev_count, dsum, False


def quantile(q: float, buckets: list) -> float | None:
    """Estimate the q-quantile from cumulative buckets [(le, n)] the way Prometheus'
    histogram_quantile does: linear within the bucket; in the +Inf bucket, the highest
    finite bound; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    for i, (le, c) in enumerate(buckets):
        if c >= rank:
            break
    if math.isinf(le):
        finite = [b for b, _ in buckets if not math.isinf(b)]
        return finite[-1] if finite else None
    if i == 0:
        if le <= 0:
            return le
        lower, below = 0.0, 0.0
    else:
        lower, below = buckets[i - 1]
    inside = c - below
    if inside <= 0:
        return le
    return lower + (le - lower) * (rank - below) / inside


def bar(count: float, max_count: float, width: int = BAR_WIDTH) -> str:
    """bcc's stars: int(count * width / max) of them (bcc's _stars in table.py)."""
    if max_count <= 0 or count <= 0:
        return ""
    return "*" * min(width, int(count * width / max_count))


def bucket_rows(buckets: list, unit: str = "", width: int = BAR_WIDTH) -> list[BucketRow]:
    """Cumulative buckets [(le, n)] -> one row per bucket from the first to the last that
    holds observations (none when empty), bars scaled to the fullest bucket."""
    rows = []
    lower, below = None, 0.0
    for le, c in buckets:
        lo = lower if lower is not None else (0.0 if le > 0 else -INF)
        n = max(c - below, 0.0)
        text = human(le, unit) if (le == 0 and lower is None) else f"{human(lo, unit)} -> {human(le, unit)}"
        rows.append(BucketRow(lo, le, text, n, ""))
        lower, below = le, c
    nonzero = [i for i, r in enumerate(rows) if r.count > 0]
    if not nonzero:
        return []
    rows = rows[nonzero[0]:nonzero[-1] + 1]
    top = max(r.count for r in rows)
    for r in rows:
        r.bar = bar(r.count, top, width)
    return rows


def format_row(row: BucketRow, unit: str = "", width: int = BAR_WIDTH) -> str:
    """One bcc-style line:  "       1µs -> 2µs        : 125      |********          |" """
    if " -> " in row.range:
        lo, hi = row.range.split(" -> ", 1)
        rng = f"{lo:>10} -> {hi:<10}"
    else:
        rng = f"{row.range:>10}    {'':<10}"
    return f"{rng} : {count_text(row.count):<8} |{row.bar:<{width}}|"


def hist_header() -> str:
    """The line above the rows, like bcc's "     usecs               : count     distribution"."""
    return f"{'range':>12}{'':<12} : {'count':<8}  distribution"
