"""The exporter's HTTP face: /metrics (Prometheus text, or protobuf when asked), /healthz, /status (JSON).

What it serves is a `MetricsSite` (exporter/daemon/app.py's ExporterApp is one). /metrics
negotiates on Accept (exposition.negotiate) among the formats the site lists in its `formats`
attribute: one that has none serves text only, through `site.scrape()`; one that lists formats
("text", "protobuf") is called as `site.scrape(fmt)` with the chosen one.
Concurrent scrapes of one moment get one shared body (exporter/snapshot.py SharedBodies), which
each handler thread writes out without copying it."""
from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from exporter.exposition.text import FORMATS, negotiate

log = logging.getLogger("bpfleet.http")


class MetricsSite(Protocol):
    """All the HTTP face needs (plus, optionally, `formats`: the formats scrape() renders)."""

    def scrape(self, fmt: str = "text") -> bytes: ...

    def status(self) -> dict: ...


def make_server(host: str, port: int, exporter: MetricsSite) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "bpfleet"

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                formats = getattr(exporter, "formats", None)
                if formats:
                    fmt = negotiate(self.headers.get("Accept"), formats)
                    body = exporter.scrape(fmt)
                else:
                    fmt, body = "text", exporter.scrape()
                self._send(200, FORMATS[fmt], body, vary=True)
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", b"ok\n")
            elif path == "/status":
                body = json.dumps(exporter.status(), indent=2).encode() + b"\n"
                self._send(200, "application/json", body)
            elif path == "/":
                self._send(200, "text/html; charset=utf-8",
                           b'<html><body><h1>bpfleet exporter</h1><a href="/metrics">/metrics</a> '
                           b'<a href="/status">/status</a> <a href="/healthz">/healthz</a></body></html>\n')
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics, /status, /healthz\n")

        def _send(self, code: int, ctype: str, body: bytes, vary: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            if vary:
                self.send_header("Vary", "Accept")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.address_string(), fmt % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
