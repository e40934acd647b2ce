"""One dashboard per program: a row per metric of its manifest, by metric type (counters as
rates, gauges as they are, histograms as a heatmap plus percentiles), then the program's own
cost (kernel time, maps, ring buffers, errors). A template variable per label."""
from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from orchestrator.dashboards import promql as q
from orchestrator.dashboards.model import ProgramView
from orchestrator.dashboards.panels import (INSTANCE, JOB, TAG, TOP_K, Layout, heatmap_panel, label_variable,
                                            new_dashboard, program_uid, query_variable, ref_ids, stat_panel,
                                            table_panel, target, text_panel, timeseries_panel)


def label_variables(view: ProgramView) -> list[tuple[str, str, str]]:
    """(variable, label, query) for every label of the program's metrics, in first-seen order.
    The values come from the first metric that has the label."""
    out, seen = [], set()
    for m in view.metrics:
        series = f"{m.name}_count" if m.type == "histogram" else m.name
        for label in m.labels:
            if label in seen:
                continue
            seen.add(label)
            out.append((label_variable(label), label,
                        f'label_values({series}{{job=~"$job", instance=~"$instance"}}, {label})'))
    return out


def metric_selector(labels) -> str:
    return q.selector(JOB, INSTANCE, *(q.var(lbl, label_variable(lbl)) for lbl in labels))


def metric_panels(m) -> list[tuple[object, int, int]]:
    """(panel builder, width, height) for one metric, by its type. Labelled metrics are shown by
    label; unlabelled ones by host."""
    sel = metric_selector(m.labels)
    group = list(m.labels) or ["instance"]
    legend = q.legend(group)
    out = []
    if m.type == "counter":
        title = f"{m.name} rate" + (f" by {', '.join(m.labels)} (top {TOP_K})" if m.labels else " by host")
        expr = q.counter_top_rate(m.name, sel, group, TOP_K) if m.labels else q.counter_rate(m.name, sel, group)
        out.append((timeseries_panel(title, m.help, q.unit(m.name, "rate"), [(expr, legend)]), 12, 8))
        if m.labels:
            out.append((timeseries_panel(f"{m.name} rate by host", m.help, q.unit(m.name, "rate"),
                                    [(q.counter_rate(m.name, sel, ["instance"]), "{{instance}}")]), 6, 8))
            out.append((table_panel(f"{m.name} in the time range", f"Increase over the dashboard's time range. {m.help}",
                               q.counter_increase(m.name, sel, list(m.labels)), rename={"Value": "increase"},
                               unit=q.unit(m.name, "value")), 6, 8))
        else:
            out.append((stat_panel(f"{m.name} in the time range", f"Increase over the dashboard's time range. {m.help}",
                              f"sum({q.increase(m.name, sel)})", q.unit(m.name, "value")), 12, 8))
    elif m.type == "gauge":
        out.append((timeseries_panel(m.name, m.help, q.unit(m.name, "value"),
                                [(f"{m.name}{sel}", q.legend(["instance", *m.labels]))], min_zero=False), 24, 8))
    elif m.type == "histogram":
        u = q.unit(m.name, "value")
        out.append((heatmap_panel(f"{m.name} heatmap", f"Observations per second in each bucket, all label values "
                             f"together. {m.help}", q.histogram_heatmap(m.name, sel), u), 12, 9))
        refs = ref_ids()
        pct = timeseries_panel(f"{m.name} percentiles" + (f" by {', '.join(m.labels)}" if m.labels else " by host"),
                          f"p50, p90 and p99 estimated from the buckets. {m.help}", u, [])
        for quant in q.QUANTILES:
            pct = pct.with_target(target(q.histogram_quantile(quant, m.name, sel, group),
                                          f"{q.quantile_legend(quant)} {legend}", next(refs)))
        out.append((pct, 12, 9))
        out.append((timeseries_panel(f"{m.name} observations" + (f" by {', '.join(m.labels)}" if m.labels else " by host"),
                                f"Observations per second. {m.help}", "ops",
                                [(q.histogram_rate(m.name, sel, group), legend)]), 12, 8))
        if m.has_sum:
            out.append((timeseries_panel(f"{m.name} mean" + (f" by {', '.join(m.labels)}" if m.labels else " by host"),
                                    f"Sum / count of the observations in the window. {m.help}", u,
                                    [(q.histogram_mean(m.name, sel, group), legend)]), 12, 8))
    else:
        raise ValueError(f"{m.name}: unknown metric type {m.type!r}")
    return out


def _about(view: ProgramView) -> str:
    lines = [f"**{view.name}**: {view.description}", "", "| metric | type | labels | help |", "|---|---|---|---|"]
    for m in view.metrics:
        lines.append(f"| `{m.name}` | {m.type} | {', '.join(m.labels) or '-'} | {m.help} |")
    if view.knobs:
        lines += ["", "| knob | default | what it does |", "|---|---|---|"]
        for k in view.knobs:
            default = str(k.default).lower() if isinstance(k.default, bool) else str(k.default)
            lines.append(f"| `{k.name}` | {default} | {k.description} |")
    if view.ring_buffers:
        lines += ["", f"Ring buffers: {', '.join(f'`{r}`' for r in view.ring_buffers)}"]
    return "\n".join(lines)


def program_dashboard(view: ProgramView) -> dashboard.Dashboard:
    name = view.name
    d = new_dashboard(program_uid(name), f"bpfleet / {name}", view.description, [TAG, f"{TAG}-program"])
    d.with_variable(query_variable(
        "instance", f'label_values(bpfleet_program_info{{job=~"$job", program="{name}"}}, instance)', "Host"))
    for variable, label, query in label_variables(view):
        d.with_variable(query_variable(variable, query, label))
    prog = q.selector(JOB, INSTANCE, q.eq("program", name))
    L = Layout(d)

    L.row(name)
    L.add(text_panel("About", _about(view)), 10, 7)
    L.add(stat_panel("Hosts attached", f"Hosts where {name} is loaded and attached.",
                f"sum(bpfleet_program_attached{prog})"), 3, 7)
    L.add(stat_panel("Hosts not attached", f"Hosts where {name} failed to load or attach.",
                f"count(bpfleet_program_attached{prog}) - sum(bpfleet_program_attached{prog})", red_from=1), 3, 7)
    L.add(stat_panel("Load errors", "Failed loads, attaches and upgrades in the time range.",
                f"sum(increase(bpfleet_program_load_errors_total{prog}[{q.RANGE_WINDOW}]))", red_from=1), 3, 7)
    L.add(table_panel("Versions", "Hosts per version and artifact digest.",
                 f"count by (version, digest) (bpfleet_program_info{prog})", rename={"Value": "hosts"}), 5, 7)

    for m in view.metrics:
        L.row(m.name)
        for panel, w, h in metric_panels(m):
            L.add(panel, w, h)

    L.row(f"{name}: kernel and exporter cost")
    L.add(timeseries_panel("Kernel time per event", "Mean CPU time of one run of each BPF program "
                      "(run time / run count); BPF programs that did not run are left out.", "s",
                      [(q.cost_per_event(prog, ["bpf_program"]), "{{bpf_program}}")]), 8)
    L.add(timeseries_panel("Kernel CPU share", "CPU time in each BPF program, as a share of one CPU.", "percentunit",
                      [(q.by(["bpf_program"], q.rate("bpfleet_program_run_time_seconds_total", prog)),
                        "{{bpf_program}}")]), 8)
    L.add(timeseries_panel("BPF program runs", "Runs per second of each BPF program.", "ops",
                      [(q.by(["bpf_program"], q.rate("bpfleet_program_run_count_total", prog)),
                        "{{bpf_program}}")]), 8)
    if view.hash_maps:  # the exporter reports fill for hash maps only: arrays are always full
        L.add(timeseries_panel("Map fill", "Entries / max_entries per hash map, worst host.",
                          "percentunit", [(q.by(["map"], f"bpfleet_map_fill_ratio{prog}", "max"), "{{map}}")]), 8)
    L.add(timeseries_panel("Map read duration", "Time to read each map in a scrape, worst host.", "s",
                      [(q.by(["map"], f"bpfleet_map_read_duration_seconds{prog}", "max"), "{{map}}")]), 8)
    L.add(timeseries_panel("Load and read errors", "Per second, by host.", "ops",
                      [(q.by(["instance"], q.rate("bpfleet_program_load_errors_total", prog)), "load {{instance}}"),
                       (q.by(["instance"], q.rate("bpfleet_read_errors_total", prog)), "read {{instance}}")]), 8)
    if view.ring_buffers:
        L.add(timeseries_panel("Ring buffer events", "Events consumed per second.", "ops",
                          [(q.by(["map"], q.rate("bpfleet_ringbuf_events_total", prog)), "{{map}}")]), 12)
        L.add(timeseries_panel("Ring buffer drops", "Events per second the BPF program could not reserve room for.",
                          "ops", [(q.by(["instance", "map"], q.rate("bpfleet_ringbuf_drops_total", prog)),
                                   "{{instance}} {{map}}")]), 12)
    return d
