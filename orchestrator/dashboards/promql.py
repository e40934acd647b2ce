"""PromQL for the dashboards: small pure string builders, one rule per metric type.

Every query is filtered by the dashboard's template variables: `job` and `instance` always,
and every label of the metric that has a variable of its own (`disk=~"$disk"`). Rates use
Grafana's `$__rate_interval` (at least four scrape intervals, so never an empty window) and
totals `$__range` (the dashboard's time range).
"""
from __future__ import annotations

RATE_WINDOW = "$__rate_interval"
RANGE_WINDOW = "$__range"
QUANTILES = (0.5, 0.9, 0.99)


def var(label: str, variable: str | None = None) -> str:
    """A matcher on a template variable; regex, so that multi-value and All work."""
    return f'{label}=~"${variable or label}"'


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def selector(*matchers: str) -> str:
    return "{" + ", ".join(matchers) + "}" if matchers else ""


def by(labels, expr: str, agg: str = "sum") -> str:
    return f"{agg} by ({', '.join(labels)}) ({expr})" if labels else f"{agg}({expr})"


def rate(series: str, sel: str, window: str = RATE_WINDOW) -> str:
    return f"rate({series}{sel}[{window}])"


def increase(series: str, sel: str, window: str = RANGE_WINDOW) -> str:
    return f"increase({series}{sel}[{window}])"


def counter_rate(name: str, sel: str, labels) -> str:
    """Per-second rate of a counter, summed by `labels`."""
    return by(labels, rate(name, sel))


def counter_top_rate(name: str, sel: str, labels, k: int = 10) -> str:
    return f"topk({k}, {counter_rate(name, sel, labels)})"


def counter_increase(name: str, sel: str, labels) -> str:
    """How much a counter grew over the dashboard's time range, largest first (a table)."""
    return f"sort_desc({by(labels, increase(name, sel))})"


def histogram_heatmap(name: str, sel: str) -> str:
    """Observations per second in each `le` bucket, all label values together."""
    return by(["le"], rate(f"{name}_bucket", sel))


def histogram_quantile(q: float, name: str, sel: str, labels) -> str:
    return f"histogram_quantile({q:g}, {by(['le', *labels], rate(f'{name}_bucket', sel))})"


def histogram_rate(name: str, sel: str, labels) -> str:
    """Observations per second."""
    return by(labels, rate(f"{name}_count", sel))


def histogram_mean(name: str, sel: str, labels) -> str:
    return f"{by(labels, rate(f'{name}_sum', sel))} / {by(labels, rate(f'{name}_count', sel))}"


def cost_per_event(sel: str, labels) -> str:
    """Kernel time per run of a BPF program (bpf_stats): run time rate / run count rate.
    BPF programs that did not run in the window are left out rather than shown as NaN."""
    t = by(labels, rate("bpfleet_program_run_time_seconds_total", sel))
    n = by(labels, rate("bpfleet_program_run_count_total", sel))
    return f"{t} / ({n} > 0)"


def quantile_legend(q: float) -> str:
    return f"p{q * 100:g}"


def legend(labels) -> str:
    return " ".join(f"{{{{{lbl}}}}}" for lbl in labels)


def unit(metric: str, kind: str) -> str:
    """Grafana unit for a metric shown as `kind`: "rate" (per second) or "value"."""
    base = metric[:-len("_total")] if metric.endswith("_total") else metric
    if kind == "rate":
        if base.endswith("_seconds"):
            return "percentunit"        # seconds per second: a share of one CPU / of the time
        if base.endswith("_bytes"):
            return "Bps"
        return "ops"
    if base.endswith("_seconds"):
        return "s"
    if base.endswith("_bytes"):
        return "bytes"
    if base.endswith("_ratio"):
        return "percentunit"
    return "short"
