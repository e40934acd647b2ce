"""`bpfleet top` as a command, against a small fake exporter (no root needed), and the live
loop with a scripted sequence of scrapes."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from bpfleet.top.render import run_live
from bpfleet.top.scrape import ScrapeError, parse

ROOT = Path(__file__).resolve().parents[2]
BPFLEET = [sys.executable, "-m", "bpfleet.cli"]


def bpfleet(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*BPFLEET, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exposition(n: int) -> str:
    """Scrape number n of a fake exporter: a counter growing by 1000 per scrape, a histogram
    gaining 4 observations in 2-4µs and 1 in 4-8µs per scrape."""
    les = ["0.0", "1e-06", "2e-06", "4e-06", "8e-06", "+Inf"]
    cum = [0, 0, 0, 4 * n, 5 * n, 5 * n]
    lines = ["# HELP syscalls_total Syscalls", "# TYPE syscalls_total counter",
             f'syscalls_total{{syscall="getppid"}} {1000 * n}', 'syscalls_total{syscall="read"} 7',
             "# HELP runq_latency_seconds Run queue latency", "# TYPE runq_latency_seconds histogram"]
    lines += [f'runq_latency_seconds_bucket{{le="{le}"}} {c}' for le, c in zip(les, cum)]
    lines += [f"runq_latency_seconds_sum {n * 1.5e-5}", f"runq_latency_seconds_count {5 * n}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def fake_exporter():
    hits = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/metrics":
                self.send_error(404)
                return
            hits["n"] += 1
            body = exposition(hits["n"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join(5)


def test_unreachable_url_is_one_line_exit_2():
    url = f"http://127.0.0.1:{closed_port()}"
    r = bpfleet("top", "--once", "--interval", "0.05", "--url", url)
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"{url}/metrics" in lines[0] and "refused" in lines[0].lower()
    assert r.stdout == ""


def test_http_error_is_one_line_exit_2(fake_exporter):
    r = bpfleet("top", "--once", "--interval", "0.05", "--url", fake_exporter + "/nope")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == f"bpfleet top: cannot scrape {fake_exporter}/nope: HTTP 404 Not Found"


def test_bad_arguments_exit_2():
    for args in (["--json"], ["--once", "--filter", "("], ["--once", "--url", "ftp://x"],
                 ["--once", "--interval", "0"], ["--once", "--top", "0"]):
        r = bpfleet("top", *args)
        assert r.returncode == 2, (args, r)
        assert "Traceback" not in r.stderr, (args, r.stderr)


def test_once_json_against_fake_exporter(fake_exporter):
    r = bpfleet("top", "--once", "--json", "--interval", "0.2", "--url", fake_exporter)
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)
    assert v["url"] == fake_exporter + "/metrics"
    assert 0.15 < v["elapsed"] < 5
    m = {x["name"]: x for x in v["metrics"]}
    s = m["syscalls_total"]["series"][0]
    assert s["labels"] == {"syscall": "getppid"} and s["delta"] == 1000
    assert s["rate"] == pytest.approx(1000 / v["elapsed"])
    h = m["runq_latency_seconds"]["histograms"][0]
    assert h["count"] == 5
    assert [(r["range"], r["count"], r["bar"]) for r in h["rows"]] == [
        ("2µs -> 4µs", 4, "*" * 40), ("4µs -> 8µs", 1, "*" * 10)]


def test_once_text_against_fake_exporter(fake_exporter):
    r = bpfleet("top", "--once", "--interval", "0.1", "--url", fake_exporter, "--top", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"bpfleet top  {fake_exporter}/metrics" in out
    assert "syscalls_total  counter  2 series, top 1 by rate" in out
    assert '{syscall="getppid"}' in out and '{syscall="read"}' not in out
    assert "count     distribution" in out
    assert "       2µs -> 4µs        : 4        |****************************************|" in out


def test_live_loop_shows_errors_and_keeps_going():
    script = [ScrapeError("Connection refused"), parse(exposition(1), mono=10.0, wall=1e9),
              parse(exposition(3), mono=12.0, wall=1e9 + 2), ScrapeError("timed out")]
    calls = []

    def fetch(url):
        calls.append(url)
        x = script[len(calls) - 1]
        if isinstance(x, Exception):
            raise x
        return x

    console = Console(record=True, width=100, force_terminal=False, color_system=None)
    run_live("http://h:1/metrics", interval=2, top=5, console=console, fetch_fn=fetch,
             sleep=lambda s: None, frames=4)
    out = console.export_text()
    assert len(calls) == 4
    assert "cannot scrape http://h:1/metrics: Connection refused (retrying every 2s)" in out
    assert "rates over 2.00s" in out and "1k/s" in out          # 2000 over 2s
    assert "scrape failed: timed out (retrying" in out           # the last good view, with the error
