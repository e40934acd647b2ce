"""The per-host daemon in three parts: process.py (signals, threads, main loop), app.py (the
exporter application: supervisor, mitigations, breaker, snapshots, OTLP, reload) and host.py
(capabilities, kernel filesystems, stale pins, bpf_stats)."""
