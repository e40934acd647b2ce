"""The fleet overview dashboard: exporters, program versions, attach state, kernel cost,
scrape cost, load errors, map fill, ring buffers. Only `bpfleet_*` self-metrics and `up`."""
from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from orchestrator.dashboards import promql as q
from orchestrator.dashboards.panels import (INSTANCE, JOB, OVERVIEW_UID, TAG, TOP_K, Layout, new_dashboard,
                                            query_variable, stat_panel, table_panel, timeseries_panel)


def overview() -> dashboard.Dashboard:
    d = new_dashboard(OVERVIEW_UID, "bpfleet / fleet overview",
                   "Every host's bpfleet exporter: programs and versions, attach state, kernel cost "
                   "per program, scrape cost, map fill and ring buffers.", [TAG])
    d.with_variable(query_variable("instance", 'label_values(bpfleet_build_info{job=~"$job"}, instance)', "Host"))
    d.with_variable(query_variable(
        "program", 'label_values(bpfleet_program_attached{job=~"$job", instance=~"$instance"}, program)', "Program"))
    host = q.selector(JOB, INSTANCE)
    prog = q.selector(JOB, INSTANCE, q.var("program"))
    L = Layout(d)

    L.row("Fleet")
    L.add(stat_panel("Hosts", "Hosts whose exporter answered the last scrape (`bpfleet_build_info` by instance).",
                f"count(count by (instance) (bpfleet_build_info{host}))"), 4, 4)
    L.add(stat_panel("Hosts down", "Targets of the job whose last scrape failed (`up` is 0).",
                f"count(up{host}) - sum(up{host})", red_from=1), 4, 4)
    L.add(stat_panel("Programs attached", "Program instances loaded and attached, over all hosts.",
                f"sum(bpfleet_program_attached{prog})"), 4, 4)
    L.add(stat_panel("Programs not attached", "Program instances that failed to load or attach.",
                f"count(bpfleet_program_attached{prog}) - sum(bpfleet_program_attached{prog})",
                red_from=1), 4, 4)
    L.add(stat_panel("Load errors", "Failed loads, attaches and upgrades in the time range.",
                f"sum(increase(bpfleet_program_load_errors_total{prog}[{q.RANGE_WINDOW}]))",
                red_from=1), 4, 4)
    L.add(table_panel("Exporter versions", "Hosts per bpfleet exporter build.",
                 f"count by (version) (bpfleet_build_info{host})", rename={"Value": "hosts"}), 4, 4)

    L.row("Programs")
    L.add(table_panel("Program versions", "Every program running on every host, with its version and "
                 "artifact digest (`bpfleet_program_info`).",
                 f"bpfleet_program_info{prog}", hide=("Value", "job"),
                 order=("instance", "program", "version", "digest")), 12, 9)
    L.add(table_panel("Hosts per program version", "Rollout view: how many hosts run each version.",
                 f"count by (program, version, digest) (bpfleet_program_info{prog})",
                 rename={"Value": "hosts"}), 12, 9)
    L.add(timeseries_panel("Attach state", "1 = loaded and attached, 0 = failed (`bpfleet_program_attached`).",
                      "short", [(f"bpfleet_program_attached{prog}", "{{instance}} {{program}}")]), 12)
    L.add(timeseries_panel("Load and read errors", "Per second: failed loads, attaches and upgrades; scrapes "
                      "in which a program's maps could not be read.", "ops",
                      [(q.by(["instance", "program"], q.rate("bpfleet_program_load_errors_total", prog)),
                        "load {{instance}} {{program}}"),
                       (q.by(["instance", "program"], q.rate("bpfleet_read_errors_total", prog)),
                        "read {{instance}} {{program}}")]), 12)

    L.row("Kernel cost")
    L.add(timeseries_panel("Kernel time per event", "Mean CPU time of one run of each BPF program "
                      "(`bpf_stats`: run time / run count); programs that did not run are left out.",
                      "s", [(q.cost_per_event(prog, ["program", "bpf_program"]), "{{program}}/{{bpf_program}}")]), 12)
    L.add(timeseries_panel("Kernel CPU share by program", "CPU time spent in each program's BPF programs, "
                      "as a share of one CPU, all selected hosts together.", "percentunit",
                      [(q.by(["program"], q.rate("bpfleet_program_run_time_seconds_total", prog)), "{{program}}")]), 12)
    L.add(timeseries_panel("BPF program runs", "Runs per second of each BPF program.", "ops",
                      [(q.by(["program", "bpf_program"], q.rate("bpfleet_program_run_count_total", prog)),
                        "{{program}}/{{bpf_program}}")]), 12)
    L.add(timeseries_panel("Kernel CPU share by host", "CPU time in all selected programs, per host, as a "
                      "share of one CPU.", "percentunit",
                      [(q.by(["instance"], q.rate("bpfleet_program_run_time_seconds_total", prog)), "{{instance}}")]), 12)

    L.row("Scrape cost")
    L.add(timeseries_panel("Exporter scrape duration", "Time the exporter's previous scrape took: read "
                      "the maps, decode, render (`bpfleet_scrape_duration_seconds`).", "s",
                      [(f"bpfleet_scrape_duration_seconds{host}", "{{instance}}")]), 8)
    L.add(timeseries_panel("Prometheus scrape duration", "Scrape time as Prometheus sees it, network "
                      "included (`scrape_duration_seconds`).", "s",
                      [(f"scrape_duration_seconds{host}", "{{instance}}")]), 8)
    L.add(timeseries_panel("Samples per scrape", "Series in each exporter's /metrics (`scrape_samples_scraped`).",
                      "short", [(f"scrape_samples_scraped{host}", "{{instance}}")]), 8)
    L.add(timeseries_panel(f"Map read duration (top {TOP_K})", "Time to read each map in a scrape, worst host.",
                      "s", [(f"topk({TOP_K}, {q.by(['program', 'map'], f'bpfleet_map_read_duration_seconds{prog}', 'max')})",
                             "{{program}}/{{map}}")]), 24)

    L.row("Maps")
    L.add(timeseries_panel(f"Map fill (top {TOP_K})", "Entries / max_entries, worst host. A full hash map "
                      "drops new keys. Array maps (and .bss) always read as full.", "percentunit",
                      [(f"topk({TOP_K}, {q.by(['program', 'map'], f'bpfleet_map_fill_ratio{prog}', 'max')})",
                        "{{program}}/{{map}}")]), 12)
    L.add(timeseries_panel(f"Map entries (top {TOP_K})", "Entries read from each map, worst host.", "short",
                      [(f"topk({TOP_K}, {q.by(['program', 'map'], f'bpfleet_map_entries{prog}', 'max')})",
                        "{{program}}/{{map}}")]), 12)

    L.row("Ring buffers")
    L.add(timeseries_panel("Ring buffer events", "Events consumed per second.", "ops",
                      [(q.by(["program", "map"], q.rate("bpfleet_ringbuf_events_total", prog)),
                        "{{program}}/{{map}}")]), 10)
    L.add(timeseries_panel("Ring buffer drops", "Events per second the BPF program could not reserve room for "
                      "(the consumer is behind or the buffer is too small).", "ops",
                      [(q.by(["instance", "program", "map"], q.rate("bpfleet_ringbuf_drops_total", prog)),
                        "{{instance}} {{program}}/{{map}}")]), 10)
    L.add(stat_panel("Ring buffer drops", "Events lost in the time range.",
                f"sum(increase(bpfleet_ringbuf_drops_total{prog}[{q.RANGE_WINDOW}]))", red_from=1), 4)
    return d
