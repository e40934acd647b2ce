"""Grafana dashboards from program views: pure functions, views in, dashboard JSON out.

Built with grafana-foundation-sdk's builders (typed panels, queries and variables), then
serialised with sorted keys, so the same programs always give the same bytes. Ids are panel
positions and uids are derived from names: nothing depends on time or on the machine.

- `overview()`: the fleet: exporters, program versions, attach state, kernel cost, scrape
  cost, load errors, map fill, ring buffers. Only `bpfleet_*` self-metrics and `up`.
- `program_dashboard(view)`: one program. A row per metric of its manifest, by metric type:
  counters as rates, gauges as they are, histograms as a heatmap plus percentiles; then the
  program's own cost (kernel time, maps, ring buffers, errors). A template variable per label.
"""
from __future__ import annotations

import hashlib
import json
import re

from core.extras import require

require("dashboards", "Generating dashboards", "grafana_foundation_sdk")
from grafana_foundation_sdk.builders import (common, dashboard, heatmap, prometheus, stat, table,
                                             text, timeseries)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import text as tm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from orchestrator.dashboards import promql as q
from orchestrator.dashboards.model import ProgramView

DATASOURCE_UID = "bpfleet-prometheus"
DATASOURCE_NAME = "Prometheus (bpfleet)"
DATASOURCE_URL = "http://localhost:9090"
DASHBOARDS_PATH = "/var/lib/bpfleet/dashboards"     # where Grafana's file provider looks
TAG = "bpfleet"
OVERVIEW_UID = "bpfleet-overview"
REFRESH = "30s"
TOP_K = 10

# Variables every dashboard has; a label variable with one of these names gets a prefix.
RESERVED_VARIABLES = {"datasource", "job", "instance", "program"}

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB, INSTANCE = q.var("job"), q.var("instance")


# ------------------------------------------------------------------------------------------
# Naming
# ------------------------------------------------------------------------------------------

def program_uid(name: str) -> str:
    """Stable dashboard uid (Grafana allows 40 characters)."""
    uid = f"bpfleet-{name.replace('_', '-')}"
    if len(uid) > 40:
        uid = f"{uid[:31]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return uid


def program_filename(name: str) -> str:
    return f"bpfleet-{name}.json"


OVERVIEW_FILENAME = "bpfleet-overview.json"


def label_variable(label: str) -> str:
    return f"label_{label}" if label in RESERVED_VARIABLES else label


# ------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------

class _Layout:
    """Adds panels in reading order with sequential ids; the SDK flows them onto the grid."""

    def __init__(self, d: dashboard.Dashboard):
        self.d, self.next_id = d, 1

    def row(self, title: str) -> None:
        self.d.with_row(dashboard.Row(title).id(self._id()))

    def add(self, panel, w: int, h: int = 8) -> None:
        self.d.with_panel(panel.id(self._id()).span(w).height(h))

    def _id(self) -> int:
        i, self.next_id = self.next_id, self.next_id + 1
        return i


def _target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False,
            fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    t = prometheus.Dataquery().expr(expr).ref_id(ref)
    if legend:
        t = t.legend_format(legend)
    if instant:
        t = t.instant()
    if fmt is not None:
        t = t.format(fmt)
    return t


def _refs():
    return iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _timeseries(title: str, description: str, unit: str, targets, *, min_zero: bool = True):
    p = (timeseries.Panel().title(title).description(description).datasource(DS).unit(unit)
         .fill_opacity(10).line_width(1).show_points(cm.VisibilityMode.NEVER)
         .legend(common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                 .placement(cm.LegendPlacement.BOTTOM).calcs([]))
         .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    if min_zero:
        p = p.min(0)
    refs = _refs()
    for expr, legend in targets:
        p = p.with_target(_target(expr, legend, next(refs)))
    return p


def _stat(title: str, description: str, expr: str, unit: str = "short", *, red_from: float | None = None):
    p = (stat.Panel().title(title).description(description).datasource(DS).unit(unit)
         .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
         .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .with_target(_target(expr, ref="A")))
    steps = [dm.Threshold(value=None, color="green")]
    if red_from is not None:
        steps.append(dm.Threshold(value=red_from, color="red"))
    return p.thresholds(dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))


def _table(title: str, description: str, expr: str, *, hide=(), rename=None, order=(), unit: str = "short"):
    exclude = {n: True for n in ("Time", "__name__", *hide)}
    organize = {"excludeByName": exclude, "indexByName": {c: i for i, c in enumerate(order)},
                "renameByName": dict(rename or {})}
    return (table.Panel().title(title).description(description).datasource(DS).unit(unit)
            .show_header(True).cell_height(cm.TableCellHeight.SM)
            .with_target(_target(expr, ref="A", instant=True, fmt=PromQueryFormat.TABLE))
            .with_transformation(dm.DataTransformerConfig(id_val="organize", options=organize)))


def _heatmap(title: str, description: str, expr: str, unit: str):
    return (heatmap.Panel().title(title).description(description).datasource(DS)
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit(unit))
            .rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.LE))
            .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges")
                   .scale(hm.HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64).fill("dark-orange"))
            .show_value(cm.VisibilityMode.NEVER)
            .show_tooltip().show_y_histogram().show_legend()
            .with_target(_target(expr, "{{le}}", "A", fmt=PromQueryFormat.HEATMAP)))


def _text(title: str, content: str):
    return text.Panel().title(title).mode(tm.TextMode.MARKDOWN).content(content)


def _query_variable(name: str, query: str, label: str, *, multi: bool = True):
    return (dashboard.QueryVariable(name).id(name).label(label).datasource(DS).query(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(multi).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


def _dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    ds_var = (dashboard.DatasourceVariable("datasource").id("datasource").label("Data source").type("prometheus")
              .current(dm.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID)))
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(tags)
            .editable().tooltip(dm.DashboardCursorSync.CROSSHAIR).refresh(REFRESH)
            .time("now-1h", "now").timezone("browser")
            .annotations([])
            .link(dashboard.DashboardLink("bpfleet").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
                  .as_dropdown(True).include_vars(True).keep_time(True))
            .with_variable(ds_var)
            .with_variable(_query_variable("job", "label_values(bpfleet_build_info, job)", "Job")))


def render(d: dashboard.Dashboard) -> str:
    """Dashboard builder -> JSON text: sorted keys, two-space indent, final newline."""
    obj = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------
# The fleet overview
# ------------------------------------------------------------------------------------------

def overview() -> dashboard.Dashboard:
    d = _dashboard(OVERVIEW_UID, "bpfleet / fleet overview",
                   "Every host's bpfleet exporter: programs and versions, attach state, kernel cost "
                   "per program, scrape cost, map fill and ring buffers.", [TAG])
    d.with_variable(_query_variable("instance", 'label_values(bpfleet_build_info{job=~"$job"}, instance)', "Host"))
    d.with_variable(_query_variable(
        "program", 'label_values(bpfleet_program_attached{job=~"$job", instance=~"$instance"}, program)', "Program"))
    host = q.selector(JOB, INSTANCE)
    prog = q.selector(JOB, INSTANCE, q.var("program"))
    L = _Layout(d)

    L.row("Fleet")
    L.add(_stat("Hosts", "Hosts whose exporter answered the last scrape (`bpfleet_build_info` by instance).",
                f"count(count by (instance) (bpfleet_build_info{host}))"), 4, 4)
    L.add(_stat("Hosts down", "Targets of the job whose last scrape failed (`up` is 0).",
                f"count(up{host}) - sum(up{host})", red_from=1), 4, 4)
    L.add(_stat("Programs attached", "Program instances loaded and attached, over all hosts.",
                f"sum(bpfleet_program_attached{prog})"), 4, 4)
    L.add(_stat("Programs not attached", "Program instances that failed to load or attach.",
                f"count(bpfleet_program_attached{prog}) - sum(bpfleet_program_attached{prog})",
                red_from=1), 4, 4)
    L.add(_stat("Load errors", "Failed loads, attaches and upgrades in the time range.",
                f"sum(increase(bpfleet_program_load_errors_total{prog}[{q.RANGE_WINDOW}]))",
                red_from=1), 4, 4)
    L.add(_table("Exporter versions", "Hosts per bpfleet exporter build.",
                 f"count by (version) (bpfleet_build_info{host})", rename={"Value": "hosts"}), 4, 4)

    L.row("Programs")
    L.add(_table("Program versions", "Every program running on every host, with its version and "
                 "artifact digest (`bpfleet_program_info`).",
                 f"bpfleet_program_info{prog}", hide=("Value", "job"),
                 order=("instance", "program", "version", "digest")), 12, 9)
    L.add(_table("Hosts per program version", "Rollout view: how many hosts run each version.",
                 f"count by (program, version, digest) (bpfleet_program_info{prog})",
                 rename={"Value": "hosts"}), 12, 9)
    L.add(_timeseries("Attach state", "1 = loaded and attached, 0 = failed (`bpfleet_program_attached`).",
                      "short", [(f"bpfleet_program_attached{prog}", "{{instance}} {{program}}")]), 12)
    L.add(_timeseries("Load and read errors", "Per second: failed loads, attaches and upgrades; scrapes "
                      "in which a program's maps could not be read.", "ops",
                      [(q.by(["instance", "program"], q.rate("bpfleet_program_load_errors_total", prog)),
                        "load {{instance}} {{program}}"),
                       (q.by(["instance", "program"], q.rate("bpfleet_read_errors_total", prog)),
                        "read {{instance}} {{program}}")]), 12)

    L.row("Kernel cost")
    L.add(_timeseries("Kernel time per event", "Mean CPU time of one run of each BPF program "
                      "(`bpf_stats`: run time / run count); programs that did not run are left out.",
                      "s", [(q.cost_per_event(prog, ["program", "bpf_program"]), "{{program}}/{{bpf_program}}")]), 12)
    L.add(_timeseries("Kernel CPU share by program", "CPU time spent in each program's BPF programs, "
                      "as a share of one CPU, all selected hosts together.", "percentunit",
                      [(q.by(["program"], q.rate("bpfleet_program_run_time_seconds_total", prog)), "{{program}}")]), 12)
    L.add(_timeseries("BPF program runs", "Runs per second of each BPF program.", "ops",
                      [(q.by(["program", "bpf_program"], q.rate("bpfleet_program_run_count_total", prog)),
                        "{{program}}/{{bpf_program}}")]), 12)
    L.add(_timeseries("Kernel CPU share by host", "CPU time in all selected programs, per host, as a "
                      "share of one CPU.", "percentunit",
                      [(q.by(["instance"], q.rate("bpfleet_program_run_time_seconds_total", prog)), "{{instance}}")]), 12)

    L.row("Scrape cost")
    L.add(_timeseries("Exporter scrape duration", "Time the exporter's previous scrape took: read "
                      "the maps, decode, render (`bpfleet_scrape_duration_seconds`).", "s",
                      [(f"bpfleet_scrape_duration_seconds{host}", "{{instance}}")]), 8)
    L.add(_timeseries("Prometheus scrape duration", "Scrape time as Prometheus sees it, network "
                      "included (`scrape_duration_seconds`).", "s",
                      [(f"scrape_duration_seconds{host}", "{{instance}}")]), 8)
    L.add(_timeseries("Samples per scrape", "Series in each exporter's /metrics (`scrape_samples_scraped`).",
                      "short", [(f"scrape_samples_scraped{host}", "{{instance}}")]), 8)
    L.add(_timeseries(f"Map read duration (top {TOP_K})", "Time to read each map in a scrape, worst host.",
                      "s", [(f"topk({TOP_K}, {q.by(['program', 'map'], f'bpfleet_map_read_duration_seconds{prog}', 'max')})",
                             "{{program}}/{{map}}")]), 24)

    L.row("Maps")
    L.add(_timeseries(f"Map fill (top {TOP_K})", "Entries / max_entries, worst host. A full hash map "
                      "drops new keys. Array maps (and .bss) always read as full.", "percentunit",
                      [(f"topk({TOP_K}, {q.by(['program', 'map'], f'bpfleet_map_fill_ratio{prog}', 'max')})",
                        "{{program}}/{{map}}")]), 12)
    L.add(_timeseries(f"Map entries (top {TOP_K})", "Entries read from each map, worst host.", "short",
                      [(f"topk({TOP_K}, {q.by(['program', 'map'], f'bpfleet_map_entries{prog}', 'max')})",
                        "{{program}}/{{map}}")]), 12)

    L.row("Ring buffers")
    L.add(_timeseries("Ring buffer events", "Events consumed per second.", "ops",
                      [(q.by(["program", "map"], q.rate("bpfleet_ringbuf_events_total", prog)),
                        "{{program}}/{{map}}")]), 10)
    L.add(_timeseries("Ring buffer drops", "Events per second the BPF program could not reserve room for "
                      "(the consumer is behind or the buffer is too small).", "ops",
                      [(q.by(["instance", "program", "map"], q.rate("bpfleet_ringbuf_drops_total", prog)),
                        "{{instance}} {{program}}/{{map}}")]), 10)
    L.add(_stat("Ring buffer drops", "Events lost in the time range.",
                f"sum(increase(bpfleet_ringbuf_drops_total{prog}[{q.RANGE_WINDOW}]))", red_from=1), 4)
    return d


# ------------------------------------------------------------------------------------------
# One dashboard per program
# ------------------------------------------------------------------------------------------

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
        out.append((_timeseries(title, m.help, q.unit(m.name, "rate"), [(expr, legend)]), 12, 8))
        if m.labels:
            out.append((_timeseries(f"{m.name} rate by host", m.help, q.unit(m.name, "rate"),
                                    [(q.counter_rate(m.name, sel, ["instance"]), "{{instance}}")]), 6, 8))
            out.append((_table(f"{m.name} in the time range", f"Increase over the dashboard's time range. {m.help}",
                               q.counter_increase(m.name, sel, list(m.labels)), rename={"Value": "increase"},
                               unit=q.unit(m.name, "value")), 6, 8))
        else:
            out.append((_stat(f"{m.name} in the time range", f"Increase over the dashboard's time range. {m.help}",
                              f"sum({q.increase(m.name, sel)})", q.unit(m.name, "value")), 12, 8))
    elif m.type == "gauge":
        out.append((_timeseries(m.name, m.help, q.unit(m.name, "value"),
                                [(f"{m.name}{sel}", q.legend(["instance", *m.labels]))], min_zero=False), 24, 8))
    elif m.type == "histogram":
        u = q.unit(m.name, "value")
        out.append((_heatmap(f"{m.name} heatmap", f"Observations per second in each bucket, all label values "
                             f"together. {m.help}", q.histogram_heatmap(m.name, sel), u), 12, 9))
        refs = _refs()
        pct = _timeseries(f"{m.name} percentiles" + (f" by {', '.join(m.labels)}" if m.labels else " by host"),
                          f"p50, p90 and p99 estimated from the buckets. {m.help}", u, [])
        for quant in q.QUANTILES:
            pct = pct.with_target(_target(q.histogram_quantile(quant, m.name, sel, group),
                                          f"{q.quantile_legend(quant)} {legend}", next(refs)))
        out.append((pct, 12, 9))
        out.append((_timeseries(f"{m.name} observations" + (f" by {', '.join(m.labels)}" if m.labels else " by host"),
                                f"Observations per second. {m.help}", "ops",
                                [(q.histogram_rate(m.name, sel, group), legend)]), 12, 8))
        if m.has_sum:
            out.append((_timeseries(f"{m.name} mean" + (f" by {', '.join(m.labels)}" if m.labels else " by host"),
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
    d = _dashboard(program_uid(name), f"bpfleet / {name}", view.description, [TAG, f"{TAG}-program"])
    d.with_variable(_query_variable(
        "instance", f'label_values(bpfleet_program_info{{job=~"$job", program="{name}"}}, instance)', "Host"))
    for variable, label, query in label_variables(view):
        d.with_variable(_query_variable(variable, query, label))
    prog = q.selector(JOB, INSTANCE, q.eq("program", name))
    L = _Layout(d)

    L.row(name)
    L.add(_text("About", _about(view)), 10, 7)
    L.add(_stat("Hosts attached", f"Hosts where {name} is loaded and attached.",
                f"sum(bpfleet_program_attached{prog})"), 3, 7)
    L.add(_stat("Hosts not attached", f"Hosts where {name} failed to load or attach.",
                f"count(bpfleet_program_attached{prog}) - sum(bpfleet_program_attached{prog})", red_from=1), 3, 7)
    L.add(_stat("Load errors", "Failed loads, attaches and upgrades in the time range.",
                f"sum(increase(bpfleet_program_load_errors_total{prog}[{q.RANGE_WINDOW}]))", red_from=1), 3, 7)
    L.add(_table("Versions", "Hosts per version and artifact digest.",
                 f"count by (version, digest) (bpfleet_program_info{prog})", rename={"Value": "hosts"}), 5, 7)

    for m in view.metrics:
        L.row(m.name)
        for panel, w, h in metric_panels(m):
            L.add(panel, w, h)

    L.row(f"{name}: kernel and exporter cost")
    L.add(_timeseries("Kernel time per event", "Mean CPU time of one run of each BPF program "
                      "(run time / run count); BPF programs that did not run are left out.", "s",
                      [(q.cost_per_event(prog, ["bpf_program"]), "{{bpf_program}}")]), 8)
    L.add(_timeseries("Kernel CPU share", "CPU time in each BPF program, as a share of one CPU.", "percentunit",
                      [(q.by(["bpf_program"], q.rate("bpfleet_program_run_time_seconds_total", prog)),
                        "{{bpf_program}}")]), 8)
    L.add(_timeseries("BPF program runs", "Runs per second of each BPF program.", "ops",
                      [(q.by(["bpf_program"], q.rate("bpfleet_program_run_count_total", prog)),
                        "{{bpf_program}}")]), 8)
    if view.hash_maps:  # the exporter reports fill for hash maps only: arrays are always full
        L.add(_timeseries("Map fill", "Entries / max_entries per hash map, worst host.",
                          "percentunit", [(q.by(["map"], f"bpfleet_map_fill_ratio{prog}", "max"), "{{map}}")]), 8)
    L.add(_timeseries("Map read duration", "Time to read each map in a scrape, worst host.", "s",
                      [(q.by(["map"], f"bpfleet_map_read_duration_seconds{prog}", "max"), "{{map}}")]), 8)
    L.add(_timeseries("Load and read errors", "Per second, by host.", "ops",
                      [(q.by(["instance"], q.rate("bpfleet_program_load_errors_total", prog)), "load {{instance}}"),
                       (q.by(["instance"], q.rate("bpfleet_read_errors_total", prog)), "read {{instance}}")]), 8)
    if view.ring_buffers:
        L.add(_timeseries("Ring buffer events", "Events consumed per second.", "ops",
                          [(q.by(["map"], q.rate("bpfleet_ringbuf_events_total", prog)), "{{map}}")]), 12)
        L.add(_timeseries("Ring buffer drops", "Events per second the BPF program could not reserve room for.",
                          "ops", [(q.by(["instance", "map"], q.rate("bpfleet_ringbuf_drops_total", prog)),
                                   "{{instance}} {{map}}")]), 12)
    return d


# ------------------------------------------------------------------------------------------
# Everything, as files
# ------------------------------------------------------------------------------------------

def datasource_provisioning() -> str:
    return f"""# Grafana datasource provisioning for the bpfleet dashboards (generated by `bpfleet dashboards build`).
# The dashboards use this datasource through their ${{datasource}} variable, which defaults to the uid below.
apiVersion: 1
datasources:
  - name: {DATASOURCE_NAME}
    uid: {DATASOURCE_UID}
    type: prometheus
    access: proxy
    url: {DATASOURCE_URL}
    isDefault: false
    editable: true
    jsonData:
      # Prometheus' scrape_interval: $__rate_interval is at least four of these.
      timeInterval: 15s
"""


def dashboard_provisioning() -> str:
    return f"""# Grafana dashboard provisioning for bpfleet (generated by `bpfleet dashboards build`).
# Grafana loads every *.json under `path`; put the repository's dashboards/ directory there
# (copy, symlink or bind-mount), see docs/dashboards.md.
apiVersion: 1
providers:
  - name: bpfleet
    orgId: 1
    folder: bpfleet
    type: file
    disableDeletion: false
    allowUiUpdates: false
    updateIntervalSeconds: 30
    options:
      path: {DASHBOARDS_PATH}
      foldersFromFilesStructure: false
"""


PROVISIONING_FILES = ("provisioning/datasources/bpfleet.yaml", "provisioning/dashboards/bpfleet.yaml")


def generate(views) -> dict[str, str]:
    """Every generated file: relative path -> content. Programs sorted by name."""
    views = sorted(views, key=lambda v: v.name)
    names = [v.name for v in views]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two programs named {', '.join(dup)}")
    files = {OVERVIEW_FILENAME: render(overview())}
    for v in views:
        files[program_filename(v.name)] = render(program_dashboard(v))
    files[PROVISIONING_FILES[0]] = datasource_provisioning()
    files[PROVISIONING_FILES[1]] = dashboard_provisioning()
    return files


GENERATED_RE = re.compile(r"^bpfleet-[a-z0-9_]+\.json$")
