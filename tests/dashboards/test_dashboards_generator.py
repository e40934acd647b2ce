"""orchestrator.dashboards: pure tests of the generator. A synthetic manifest bound to synthetic BTF
(tests/core/synth_btf.py, the real schema.bind) gives a ProgramPlan; the plan gives the
dashboard; the panels and PromQL must follow the metric types and the label names the plan has
after renames and drops."""
from __future__ import annotations

import json
import re

import pytest
from grafana_foundation_sdk.models import dashboard as dm

from orchestrator.dashboards import (DATASOURCE_UID, KnobView, MetricView, ProgramView, from_plan, generate, overview, program_dashboard, render)
from orchestrator.dashboards.panels import program_uid
from core.manifest import parse as parse_manifest
from core.binding import bind
from exporter.libbpf import MapInfo
from synth_btf import Btf, maps_dict

SEL = 'job=~"$job", instance=~"$instance"'
MANIFEST = '''
name = "demo"
version = "1.0.0"
description = "A demo program with every kind of metric"
license = "GPL-2.0"

[knobs.verbose]
default = false
description = "say more"

[[metrics]]
name = "demo_latency_seconds"
type = "histogram"
help = "Latency by disk and op"
map = "hists"
buckets = { scheme = "log2", field = "slots" }
sum = "sum"
scale = 1e-6
labels.dev = { name = "disk", decoder = "devt" }

[[metrics]]
name = "demo_bytes_total"
type = "counter"
help = "Bytes by disk and op"
map = "hists"
value = "bytes"
labels.dev = { name = "disk", decoder = "devt" }

[[metrics]]
name = "demo_depth"
type = "gauge"
help = "Queue depth"
map = "depths"
labels.key = { name = "queue" }

[[metrics]]
name = "demo_cpu_events_total"
type = "counter"
help = "Events per CPU"
map = "percpu"
per_cpu = "cpu"
labels.key = { drop = true }

[[metrics]]
name = "demo_drops_total"
type = "counter"
help = "Drops"
global = "drops"

[[events]]
map = "events"
drops = "drops"
'''


def demo_plan(manifest_text: str = MANIFEST):
    b = Btf()
    hist_val = b.struct("hist", [("slots", b.array(b.u64, 27)), ("sum", b.u64), ("bytes", b.u64)])
    key = b.struct("disk_op", [("dev", b.u32), ("op", b.u32)])      # `op`: not in the manifest
    maps = maps_dict(
        b.map("hists", "hash", key, hist_val),
        b.map("depths", "array", b.u32, b.u64, max_entries=4),
        b.map("percpu", "percpu_array", b.u32, b.u64, max_entries=1),
        MapInfo("events", "ringbuf", 0, 0, 4096, 0, 0),
    )
    b.datasec(".rodata", [("verbose", b.const_volatile(b.bool))])
    b.datasec(".bss", [("drops", b.u64)])
    m, problems = parse_manifest(manifest_text, "programs/demo/manifest.toml")
    assert not problems, [str(p) for p in problems]
    plan, problems = bind(m, maps, b.records, [])
    assert not problems, [str(p) for p in problems]
    return plan


@pytest.fixture(scope="module")
def view():
    return from_plan(demo_plan())


@pytest.fixture(scope="module")
def dash(view):
    return json.loads(render(program_dashboard(view)))


def panels(d):
    return [p for p in d["panels"] if p["type"] != "row"]


def panel(d, title):
    found = [p for p in panels(d) if p["title"] == title]
    assert len(found) == 1, (title, [p["title"] for p in d["panels"]])
    return found[0]


def exprs(p):
    return [t["expr"] for t in p.get("targets", [])]


def variables(d):
    return {v["name"]: v for v in d["templating"]["list"]}


# ---------------------------------------------------------------- plan -> view

def test_view_has_label_names_after_renames_and_drops(view):
    assert view == ProgramView(
        name="demo",
        description="A demo program with every kind of metric",
        metrics=(
            # `dev` renamed to disk, `op` comes from BTF only: the manifest never mentions it
            MetricView("demo_latency_seconds", "histogram", "Latency by disk and op", ("disk", "op"), True),
            MetricView("demo_bytes_total", "counter", "Bytes by disk and op", ("disk", "op")),
            MetricView("demo_depth", "gauge", "Queue depth", ("queue",)),
            # key dropped; per_cpu = "cpu" adds the exporter's cpu label
            MetricView("demo_cpu_events_total", "counter", "Events per CPU", ("cpu",)),
            MetricView("demo_drops_total", "counter", "Drops", ()),
        ),
        ring_buffers=("events",),
        knobs=(KnobView("verbose", False, "say more"),),
        hash_maps=True,
    )


def test_histogram_without_sum_has_no_mean_panel():
    text = MANIFEST.replace('sum = "sum"\n', "")
    v = from_plan(demo_plan(text))
    assert v.metrics[0].has_sum is False
    d = json.loads(render(program_dashboard(v)))
    assert not [p for p in d["panels"] if "mean" in p["title"]]
    assert not [e for p in panels(d) for e in exprs(p) if "_sum" in e]


# ---------------------------------------------------------------- queries by metric type

def test_histogram_heatmap_and_percentiles(dash):
    sel = f'{{{SEL}, disk=~"$disk", op=~"$op"}}'
    hm = panel(dash, "demo_latency_seconds heatmap")
    assert hm["type"] == "heatmap"
    assert hm["options"]["calculate"] is False and hm["options"]["yAxis"]["unit"] == "s"
    (t,) = hm["targets"]
    assert t["expr"] == f"sum by (le) (rate(demo_latency_seconds_bucket{sel}[$__rate_interval]))"
    assert t["format"] == "heatmap" and t["legendFormat"] == "{{le}}"

    pct = panel(dash, "demo_latency_seconds percentiles by disk, op")
    assert exprs(pct) == [
        f"histogram_quantile({q}, sum by (le, disk, op) (rate(demo_latency_seconds_bucket{sel}[$__rate_interval])))"
        for q in ("0.5", "0.9", "0.99")]
    assert [t["legendFormat"] for t in pct["targets"]] == [f"{p} {{{{disk}}}} {{{{op}}}}" for p in ("p50", "p90", "p99")]
    assert [t["refId"] for t in pct["targets"]] == ["A", "B", "C"]
    assert pct["fieldConfig"]["defaults"]["unit"] == "s"

    assert exprs(panel(dash, "demo_latency_seconds observations by disk, op")) == [
        f"sum by (disk, op) (rate(demo_latency_seconds_count{sel}[$__rate_interval]))"]
    assert exprs(panel(dash, "demo_latency_seconds mean by disk, op")) == [
        f"sum by (disk, op) (rate(demo_latency_seconds_sum{sel}[$__rate_interval])) / "
        f"sum by (disk, op) (rate(demo_latency_seconds_count{sel}[$__rate_interval]))"]


def test_labelled_counter_as_rates(dash):
    sel = f'{{{SEL}, disk=~"$disk", op=~"$op"}}'
    top = panel(dash, "demo_bytes_total rate by disk, op (top 10)")
    assert exprs(top) == [f"topk(10, sum by (disk, op) (rate(demo_bytes_total{sel}[$__rate_interval])))"]
    assert top["fieldConfig"]["defaults"]["unit"] == "Bps"        # _bytes_total: bytes per second
    assert exprs(panel(dash, "demo_bytes_total rate by host")) == [
        f"sum by (instance) (rate(demo_bytes_total{sel}[$__rate_interval]))"]
    tbl = panel(dash, "demo_bytes_total in the time range")
    assert exprs(tbl) == [f"sort_desc(sum by (disk, op) (increase(demo_bytes_total{sel}[$__range])))"]
    assert tbl["targets"][0]["instant"] is True and tbl["targets"][0]["format"] == "table"


def test_unlabelled_counter_by_host(dash):
    sel = f"{{{SEL}}}"
    p = panel(dash, "demo_drops_total rate by host")
    assert exprs(p) == [f"sum by (instance) (rate(demo_drops_total{sel}[$__rate_interval]))"]
    assert p["fieldConfig"]["defaults"]["unit"] == "ops"
    assert exprs(panel(dash, "demo_drops_total in the time range")) == [
        f"sum(increase(demo_drops_total{sel}[$__range]))"]


def test_per_cpu_counter_by_cpu(dash):
    p = panel(dash, "demo_cpu_events_total rate by cpu (top 10)")
    assert exprs(p) == [f'topk(10, sum by (cpu) (rate(demo_cpu_events_total{{{SEL}, cpu=~"$cpu"}}[$__rate_interval])))']


def test_gauge_as_is(dash):
    p = panel(dash, "demo_depth")
    assert exprs(p) == [f'demo_depth{{{SEL}, queue=~"$queue"}}']
    assert p["targets"][0]["legendFormat"] == "{{instance}} {{queue}}"
    assert "rate(" not in exprs(p)[0]


def test_every_metric_has_a_row_in_manifest_order(dash, view):
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["demo", *(m.name for m in view.metrics), "demo: kernel and exporter cost"]


# ---------------------------------------------------------------- template variables

def test_variables_host_and_one_per_label(dash):
    v = variables(dash)
    assert list(v) == ["datasource", "job", "instance", "disk", "op", "queue", "cpu"]
    assert v["datasource"]["type"] == "datasource" and v["datasource"]["query"] == "prometheus"
    assert v["datasource"]["current"]["value"] == DATASOURCE_UID
    assert v["instance"]["query"] == 'label_values(bpfleet_program_info{job=~"$job", program="demo"}, instance)'
    # histograms: values from the _count series (one per label set, not one per bucket)
    assert v["disk"]["query"] == f"label_values(demo_latency_seconds_count{{{SEL}}}, disk)"
    assert v["queue"]["query"] == f"label_values(demo_depth{{{SEL}}}, queue)"
    for name in ("job", "instance", "disk", "op", "queue", "cpu"):
        assert v[name]["multi"] and v[name]["includeAll"] and v[name]["allValue"] == ".*", name
        assert v[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_label_named_like_a_dashboard_variable_gets_a_prefix():
    v = ProgramView("p", "d", (MetricView("p_total", "counter", "h", ("program", "instance_id")),))
    d = json.loads(render(program_dashboard(v)))
    assert "label_program" in variables(d) and "instance_id" in variables(d)
    assert exprs(panel(d, "p_total rate by program, instance_id (top 10)")) == [
        f'topk(10, sum by (program, instance_id) (rate(p_total{{{SEL}, program=~"$label_program", '
        f'instance_id=~"$instance_id"}}[$__rate_interval])))']


# ---------------------------------------------------------------- program cost panels

def test_program_cost_panels_select_the_program(dash):
    prog = f'{{{SEL}, program="demo"}}'
    assert exprs(panel(dash, "Kernel time per event")) == [
        f"sum by (bpf_program) (rate(bpfleet_program_run_time_seconds_total{prog}[$__rate_interval])) / "
        f"(sum by (bpf_program) (rate(bpfleet_program_run_count_total{prog}[$__rate_interval])) > 0)"]
    assert exprs(panel(dash, "Kernel CPU share")) == [
        f"sum by (bpf_program) (rate(bpfleet_program_run_time_seconds_total{prog}[$__rate_interval]))"]
    assert exprs(panel(dash, "Ring buffer drops")) == [
        f"sum by (instance, map) (rate(bpfleet_ringbuf_drops_total{prog}[$__rate_interval]))"]


def test_no_ring_buffer_panels_without_events():
    v = ProgramView("p", "d", (MetricView("p_total", "counter", "h"),))
    d = json.loads(render(program_dashboard(v)))
    assert not [p for p in d["panels"] if "Ring buffer" in p["title"]]


# ---------------------------------------------------------------- overview

def test_overview_queries():
    d = json.loads(render(overview()))
    prog = f'{{{SEL}, program=~"$program"}}'
    assert exprs(panel(d, "Program versions")) == [f"bpfleet_program_info{prog}"]
    assert exprs(panel(d, "Hosts down")) == [f"count(up{{{SEL}}}) - sum(up{{{SEL}}})"]
    assert exprs(panel(d, "Hosts")) == [f"count(count by (instance) (bpfleet_build_info{{{SEL}}}))"]
    versions = panel(d, "Program versions")["transformations"][0]
    assert versions["options"]["indexByName"] == {"instance": 0, "program": 1, "version": 2, "digest": 3}
    assert exprs(panel(d, "Kernel time per event")) == [
        f"sum by (program, bpf_program) (rate(bpfleet_program_run_time_seconds_total{prog}[$__rate_interval])) / "
        f"(sum by (program, bpf_program) (rate(bpfleet_program_run_count_total{prog}[$__rate_interval])) > 0)"]
    assert exprs(panel(d, "Kernel CPU share by program")) == [
        f"sum by (program) (rate(bpfleet_program_run_time_seconds_total{prog}[$__rate_interval]))"]
    assert exprs(panel(d, "Exporter scrape duration")) == [f"bpfleet_scrape_duration_seconds{{{SEL}}}"]
    assert exprs(panel(d, "Map fill (top 10)")) == [
        f"topk(10, max by (program, map) (bpfleet_map_fill_ratio{prog}))"]
    assert exprs(panel(d, "Load errors")) == [
        f"sum(increase(bpfleet_program_load_errors_total{prog}[$__range]))"]
    assert variables(d)["instance"]["query"] == 'label_values(bpfleet_build_info{job=~"$job"}, instance)'
    all_exprs = " ".join(e for p in panels(d) for e in exprs(p))
    for metric in ("bpfleet_program_attached", "bpfleet_ringbuf_drops_total", "bpfleet_ringbuf_events_total",
                   "bpfleet_map_read_duration_seconds", "bpfleet_read_errors_total", "bpfleet_build_info"):
        assert metric in all_exprs, metric


# ---------------------------------------------------------------- shape and determinism

def all_dashboards(view):
    return {"overview": json.loads(render(overview())), "demo": json.loads(render(program_dashboard(view)))}


def test_ids_unique_grid_full_width_no_overlap(view):
    for name, d in all_dashboards(view).items():
        ids = [p["id"] for p in d["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name
        cells = set()
        for p in d["panels"]:
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24, (name, p["title"], g)
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not mine & cells, (name, p["title"], g)
            cells |= mine


def test_every_query_panel_uses_the_datasource_variable(view):
    for name, d in all_dashboards(view).items():
        for p in panels(d):
            if p["type"] == "text":
                continue
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, p["title"])
            assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), (name, p["title"])


def test_variables_used_in_queries_exist(view):
    for name, d in all_dashboards(view).items():
        defined = set(variables(d)) | {"__rate_interval", "__range"}
        used = {m for p in panels(d) for e in exprs(p) for m in re.findall(r"\$(\w+)", e)}
        assert used <= defined, (name, used - defined)


def test_render_is_deterministic_and_sorted(view):
    a, b = render(program_dashboard(view)), render(program_dashboard(from_plan(demo_plan())))
    assert a == b and a.endswith("}\n")
    assert a == json.dumps(json.loads(a), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    d = json.loads(a)
    assert d["uid"] == "bpfleet-demo" and d["title"] == "bpfleet / demo"
    assert "version" not in d and "id" not in d     # Grafana's own bookkeeping, not ours
    assert d["time"] == {"from": "now-1h", "to": "now"}


def test_dashboards_load_as_sdk_models(view):
    for d in all_dashboards(view).values():
        model = dm.Dashboard.from_json(d)
        assert model.uid == d["uid"] and len(model.panels) == len(d["panels"])


def test_uids_stable_and_short():
    assert program_uid("biolatency") == "bpfleet-biolatency"
    assert program_uid("tcp_conn") == "bpfleet-tcp-conn"
    long = program_uid("a" * 60)
    assert len(long) == 40 and long == program_uid("a" * 60) != program_uid("a" * 59 + "b")


def test_generate_files(view):
    other = ProgramView("alpha", "d", (MetricView("alpha_total", "counter", "h"),))
    files = generate([view, other])
    assert list(files) == ["bpfleet-overview.json", "bpfleet-alpha.json", "bpfleet-demo.json",
                           "provisioning/datasources/bpfleet.yaml", "provisioning/dashboards/bpfleet.yaml"]
    ds = files["provisioning/datasources/bpfleet.yaml"]
    assert f"uid: {DATASOURCE_UID}" in ds and "url: http://localhost:9090" in ds and "type: prometheus" in ds
    assert "type: file" in files["provisioning/dashboards/bpfleet.yaml"]
    assert files == generate([other, view])              # input order does not matter
    with pytest.raises(ValueError, match="two programs named demo"):
        generate([view, view])


def test_renaming_a_metric_changes_its_dashboard(view):
    renamed = from_plan(demo_plan(MANIFEST.replace("demo_bytes_total", "demo_io_bytes_total")))
    a, b = generate([view]), generate([renamed])
    assert a["bpfleet-demo.json"] != b["bpfleet-demo.json"] and "demo_io_bytes_total" in b["bpfleet-demo.json"]
    assert a["bpfleet-overview.json"] == b["bpfleet-overview.json"]
