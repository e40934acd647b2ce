"""The pieces every bpfleet dashboard is made of: names and uids, the datasource, and typed
panel builders (grafana-foundation-sdk) with the house style (units, legends, thresholds).

Pure: ids are panel positions and uids are derived from names; nothing depends on time or on
the machine. overview.py and program.py lay the panels out; generator.py writes the files.
"""
from __future__ import annotations

import hashlib
import json

from grafana_foundation_sdk.builders import (common, dashboard, heatmap, prometheus, stat, table,
                                             text, timeseries)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import text as tm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from orchestrator.dashboards import promql as q

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

class Layout:
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


def target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False,
            fmt: PromQueryFormat | None = None) -> prometheus.Dataquery:
    t = prometheus.Dataquery().expr(expr).ref_id(ref)
    if legend:
        t = t.legend_format(legend)
    if instant:
        t = t.instant()
    if fmt is not None:
        t = t.format(fmt)
    return t


def ref_ids():
    return iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def timeseries_panel(title: str, description: str, unit: str, targets, *, min_zero: bool = True):
    p = (timeseries.Panel().title(title).description(description).datasource(DS).unit(unit)
         .fill_opacity(10).line_width(1).show_points(cm.VisibilityMode.NEVER)
         .legend(common.VizLegendOptions().show_legend(True).display_mode(cm.LegendDisplayMode.LIST)
                 .placement(cm.LegendPlacement.BOTTOM).calcs([]))
         .tooltip(common.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)))
    if min_zero:
        p = p.min(0)
    refs = ref_ids()
    for expr, legend in targets:
        p = p.with_target(target(expr, legend, next(refs)))
    return p


def stat_panel(title: str, description: str, expr: str, unit: str = "short", *, red_from: float | None = None):
    p = (stat.Panel().title(title).description(description).datasource(DS).unit(unit)
         .color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
         .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
         .with_target(target(expr, ref="A")))
    steps = [dm.Threshold(value=None, color="green")]
    if red_from is not None:
        steps.append(dm.Threshold(value=red_from, color="red"))
    return p.thresholds(dashboard.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))


def table_panel(title: str, description: str, expr: str, *, hide=(), rename=None, order=(), unit: str = "short"):
    exclude = {n: True for n in ("Time", "__name__", *hide)}
    organize = {"excludeByName": exclude, "indexByName": {c: i for i, c in enumerate(order)},
                "renameByName": dict(rename or {})}
    return (table.Panel().title(title).description(description).datasource(DS).unit(unit)
            .show_header(True).cell_height(cm.TableCellHeight.SM)
            .with_target(target(expr, ref="A", instant=True, fmt=PromQueryFormat.TABLE))
            .with_transformation(dm.DataTransformerConfig(id_val="organize", options=organize)))


def heatmap_panel(title: str, description: str, expr: str, unit: str):
    return (heatmap.Panel().title(title).description(description).datasource(DS)
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit(unit))
            .rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.LE))
            .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME).scheme("Oranges")
                   .scale(hm.HeatmapColorScale.EXPONENTIAL).exponent(0.5).steps(64).fill("dark-orange"))
            .show_value(cm.VisibilityMode.NEVER)
            .show_tooltip().show_y_histogram().show_legend()
            .with_target(target(expr, "{{le}}", "A", fmt=PromQueryFormat.HEATMAP)))


def text_panel(title: str, content: str):
    return text.Panel().title(title).mode(tm.TextMode.MARKDOWN).content(content)


def query_variable(name: str, query: str, label: str, *, multi: bool = True):
    return (dashboard.QueryVariable(name).id(name).label(label).datasource(DS).query(query)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(multi).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"])))


def new_dashboard(uid: str, title: str, description: str, tags: list[str]) -> dashboard.Dashboard:
    ds_var = (dashboard.DatasourceVariable("datasource").id("datasource").label("Data source").type("prometheus")
              .current(dm.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_UID)))
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(tags)
            .editable().tooltip(dm.DashboardCursorSync.CROSSHAIR).refresh(REFRESH)
            .time("now-1h", "now").timezone("browser")
            .annotations([])
            .link(dashboard.DashboardLink("bpfleet").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
                  .as_dropdown(True).include_vars(True).keep_time(True))
            .with_variable(ds_var)
            .with_variable(query_variable("job", "label_values(bpfleet_build_info, job)", "Job")))


def render(d: dashboard.Dashboard) -> str:
    """Dashboard builder -> JSON text: sorted keys, two-space indent, final newline."""
    obj = json.loads(json.dumps(d.build(), cls=JSONEncoder))
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
