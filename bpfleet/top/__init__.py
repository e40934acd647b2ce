"""`bpfleet top`: a live terminal view of one exporter.

scrape  -- fetch and parse /metrics (prometheus_client's parser)
model   -- pure: two scrapes + elapsed time -> View (rates, programs, warnings)
interval -- pure: counter increases, histogram bucket deltas, quantiles, bcc-style rows
units   -- human units (ns/µs/ms/s, B/KiB/..., k/M/G)
render  -- rich renderables for a View, and the live refresh loop
"""
