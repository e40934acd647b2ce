"""The exporter's own metrics (prefixed bpfleet_), from a snapshot."""
from __future__ import annotations

import os

from core.series import EMPTY, Family, labels
from exporter.snapshot import Snapshot

BUILD_VERSION = "0.1.0"


def _gauge(name, help_, samples):
    return Family(name, "gauge", help_, samples)


def _counter(name, help_, samples):
    return Family(name, "counter", help_, samples)


def families(snap: Snapshot, last_scrape_seconds: float | None) -> list[Family]:
    info, attached, load_errors, read_errors = [], [], [], []
    for slot in snap.slots:
        lbl = labels(program=slot.name)
        attached.append(("", lbl, 1 if slot.attached else 0))
        load_errors.append(("", lbl, slot.load_errors))
        read_errors.append(("", lbl, slot.read_errors))
        if slot.version:
            info.append(("", labels(program=slot.name, version=slot.version, digest=slot.digest), 1))
    variant = [("", labels(program=slot.name, variant=v.variant, state=v.state, reason=v.reason),
                1 if v.state == "running" else 0)
               for slot in snap.slots for v in slot.variants]
    not_applicable = [("", labels(program=slot.name, reason=slot.not_applicable), 1)
                      for slot in snap.slots if slot.not_applicable]
    run_ns, run_cnt, rb_events, rb_drops, rb_backlog, rb_size, rb_capped = [], [], [], [], [], [], []
    entries, max_entries, fill, read_s = [], [], [], []
    limit, overflow, dropped = [], [], []
    for ps in snap.programs:
        for collector, _map in getattr(ps.program, "collectors", ()):
            sl = labels(program=ps.name, metric=collector.spec.name)
            limit.append(("", sl, collector.limit.max))
            overflow.append(("", sl, collector.limit.folded))
            dropped.append(("", sl, collector.limit.dropped_total))
        for prog, st in ps.kernel.items():
            pl = labels(program=ps.name, bpf_program=prog)
            run_ns.append(("", pl, st.run_time_ns / 1e9))
            run_cnt.append(("", pl, st.run_cnt))
        for rs in ps.rings:
            rl = labels(program=ps.name, map=rs.map)
            rb_events.append(("", rl, rs.events))
            rb_drops.append(("", rl, rs.drops))
            rb_backlog.append(("", rl, rs.backlog_bytes))
            rb_size.append(("", rl, rs.size_bytes))
            rb_capped.append(("", rl, rs.capped_polls))
        for ms in ps.map_stats:
            ml = labels(program=ps.name, map=ms.map)
            entries.append(("", ml, ms.entries))
            max_entries.append(("", ml, ms.max_entries))
            if ms.fills:
                fill.append(("", ml, ms.entries / ms.max_entries if ms.max_entries else 0))
            read_s.append(("", ml, ms.read_seconds))
    fams = [
        _gauge("bpfleet_build_info", "bpfleet exporter build and the kernel it runs on",
               [("", labels(version=BUILD_VERSION, kernel=os.uname().release), 1)]),
        _gauge("bpfleet_program_info", "Programs running, with version and artifact digest", info),
        _gauge("bpfleet_program_attached", "1 if the program is loaded and attached", attached),
        _gauge("bpfleet_program_not_applicable", "1 for a program that cannot run on this host by "
               "design (a bcc-source program without kernel headers), with the reason", not_applicable),
        _gauge("bpfleet_program_variant", "Attach variants of each program: 1 for the one that runs; "
               "state and reason say why each other one was passed over", variant),
        _counter("bpfleet_program_load_errors_total", "Failed loads, attaches and upgrades", load_errors),
        _counter("bpfleet_read_errors_total", "Snapshots in which the program's maps could not be read", read_errors),
        _counter("bpfleet_program_run_time_seconds_total", "Kernel CPU time spent in the BPF program (bpf_stats)", run_ns),
        _counter("bpfleet_program_run_count_total", "Times the BPF program ran (bpf_stats)", run_cnt),
        _gauge("bpfleet_map_entries", "Entries read from the map in the latest snapshot", entries),
        _gauge("bpfleet_map_max_entries", "The map's capacity", max_entries),
        _gauge("bpfleet_map_fill_ratio", "Entries / max_entries of hash maps (arrays are always full)", fill),
        _gauge("bpfleet_map_read_duration_seconds", "Time to read the map for the latest snapshot", read_s),
        _counter("bpfleet_ringbuf_events_total", "Ring buffer events consumed", rb_events),
        _counter("bpfleet_ringbuf_drops_total", "Ring buffer events the program could not reserve", rb_drops),
        _gauge("bpfleet_ringbuf_backlog_bytes", "Bytes in the ring buffer not consumed yet", rb_backlog),
        _gauge("bpfleet_ringbuf_size_bytes", "The ring buffer's size", rb_size),
        _counter("bpfleet_ringbuf_capped_polls_total", "Polls that stopped at the per-poll record "
                 "limit, leaving records in the ring for the next", rb_capped),
        _gauge("bpfleet_series_limit", "Most series the metric may have (max_series); beyond it, "
               "the excess is added into one series whose labels read __overflow__", limit),
        _gauge("bpfleet_series_overflow", "Label sets added into the metric's __overflow__ series "
               "in the latest scrape", overflow),
        _counter("bpfleet_series_dropped_total", "Label sets the series limit kept out: each "
                 "counted when it goes into the __overflow__ series", dropped),
        _gauge("bpfleet_snapshot_read_duration_seconds", "Time to read every map for the latest snapshot",
               [("", EMPTY, snap.read_seconds)]),
    ]
    if last_scrape_seconds is not None:
        fams.append(_gauge("bpfleet_scrape_duration_seconds",
                           "Time the previous scrape took (snapshot, decode, render)", [("", EMPTY, last_scrape_seconds)]))
    return fams
