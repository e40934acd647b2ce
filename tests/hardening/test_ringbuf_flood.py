"""Ring buffer back-pressure on the real kernel: a program writes one record per syscall of a
process that makes syscalls as fast as it can. The exporter takes at most
RING_RECORDS_PER_POLL records per poll, so the ring fills, the program's failed reserves are
counted, scrapes keep answering throughout, and the exporter's memory stays where it was.

Without the limit, one ring_buffer__consume call lasted as long as the flood stayed ahead of the
consumer, holding the supervisor lock: on this 2-CPU machine scrapes waited up to ~300 ms
behind it (the flooder is off the CPU now and then, and the ring drains); with producers on
more CPUs than the consumer can keep up with, it would never return. This test tells the two
apart by the capped polls, not by timing. Costs ~15 s."""
from __future__ import annotations

import subprocess
import sys
import time

from exporter.daemon.app import RING_RECORDS_PER_POLL
from hardening_programs import FLOOD_COMM
from harness import Metrics, deadline_poll

FLOOD_SECONDS = 6
FLOODER = f"""
import ctypes, os, time
ctypes.CDLL(None).prctl(15, b"{FLOOD_COMM}", 0, 0, 0)   # PR_SET_NAME: what the program matches
end = time.monotonic() + {FLOOD_SECONDS}
while time.monotonic() < end:
    for _ in range(10000):
        os.getppid()
"""
RING = dict(program="flood", map="flood_events")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_a_flood_fills_the_ring_not_the_exporter(hard_exporters):
    e = hard_exporters({"flood": {}, "syscalls": {}})
    e.wait_attached("flood", "syscalls")
    before = e.metrics()
    assert before.value("bpfleet_ringbuf_size_bytes", **RING) == 64 * 1024
    rss_before = rss_kib(e.proc.pid)
    flooder = subprocess.Popen([sys.executable, "-c", FLOODER])
    scrapes, rss, backlogs = [], [], []
    try:
        while flooder.poll() is None:
            t0 = time.monotonic()
            code, _, body = e.get("/metrics", timeout=10)   # a hung scrape fails here
            assert code == 200, body[:300]
            scrapes.append(time.monotonic() - t0)
            m = Metrics(body.decode())
            backlogs.append(m.value("bpfleet_ringbuf_backlog_bytes", **RING))
            rss.append(rss_kib(e.proc.pid))
            time.sleep(0.2)
    finally:
        flooder.kill()
        flooder.wait()
    during = e.metrics()
    events = during.value("bpfleet_ringbuf_events_total", **RING)
    drops = during.value("bpfleet_ringbuf_drops_total", **RING)
    capped = during.value("bpfleet_ringbuf_capped_polls_total", **RING)
    print(f"\nflood: {len(scrapes)} scrapes, slowest {max(scrapes) * 1e3:.0f} ms; "
          f"{events:.0f} records consumed, {drops:.0f} dropped, {capped:.0f} capped polls; "
          f"backlog up to {max(backlogs):.0f} B; RSS {rss_before} -> {max(rss)} KiB")
    assert len(scrapes) >= FLOOD_SECONDS // 2, scrapes   # one every ~0.2 s if none waited long
    assert capped > 0 and drops > 0, (capped, drops)
    # Every capped poll handed on exactly the limit.
    assert events >= capped * RING_RECORDS_PER_POLL
    assert max(backlogs) > 0 and max(backlogs) <= 64 * 1024
    # Bounded: no queue of records grows in the exporter (the ring is the queue).
    assert max(rss) - rss_before < 20 * 1024, (rss_before, rss)
    assert during.value("syscalls_total") > before.value("syscalls_total")
    # Once the flood stops, the ring drains and nothing is dropped any more.
    deadline_poll(lambda: e.metrics().value("bpfleet_ringbuf_backlog_bytes", **RING) == 0, 5,
                  what="the ring to drain")
    assert e.metrics().value("bpfleet_ringbuf_drops_total", **RING) == drops
