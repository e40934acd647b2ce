# -*- coding: utf-8 -*-
"""The bpfleet exporter's admin API over its UNIX socket: the one client the host modules share
(`from ansible.module_utils.bpfleet_admin import ...`; Ansible ships it with each module run).

Standard library only: it runs on the managed host with the host's own python3. The test
harness (tests/integration/harness.py) loads this same file to talk to the exporters it starts."""
from __future__ import annotations

import http.client
import json
import socket
import time

RETRY_SECONDS = 0.5


class ExporterDown(ConnectionError):
    """Nothing answers on the admin socket (no exporter, or one restarting)."""


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.unix_path)
        except OSError:
            s.close()
            raise
        self.sock = s


def call_once(path: str, method: str, url: str, body=None, timeout: float = 120) -> tuple[int, dict]:
    """One request. `body`: a JSON value, or bytes sent as they are. -> (HTTP status, JSON reply);
    a reply that is not JSON comes back as {"ok": false, "error": <its text>}."""
    conn = UnixHTTPConnection(path, timeout)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
    except (OSError, http.client.HTTPException) as e:
        raise ExporterDown(f"{method} {url} on {path}: {e}") from e
    finally:
        conn.close()
    try:
        return r.status, json.loads(text or b"{}")
    except ValueError:
        return r.status, {"ok": False, "error": text.decode(errors="replace")[:500]}


def call(path: str, method: str, url: str, body=None, timeout: float = 120,
         wait: float = 0) -> tuple[int, dict]:
    """call_once, retried while nothing answers for up to `wait` seconds (an exporter that is
    starting or restarting). ExporterDown once `wait` has passed."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return call_once(path, method, url, body, timeout)
        except ExporterDown:
            if time.monotonic() >= deadline:
                raise
            time.sleep(RETRY_SECONDS)


def get_status(path: str, wait: float) -> dict:
    """GET /status, waiting up to `wait` seconds for an exporter that answers 200."""
    deadline = time.monotonic() + wait
    while True:
        code, reply = call(path, "GET", "/status", timeout=30, wait=max(0.0, deadline - time.monotonic()))
        if code == 200:
            return reply
        if time.monotonic() >= deadline:
            raise ExporterDown(f"GET /status on {path}: HTTP {code}: {reply.get('error')}")
        time.sleep(RETRY_SECONDS)


def try_status(path: str, wait: float) -> dict | None:
    """get_status, or None when no exporter answers."""
    try:
        return get_status(path, wait)
    except ExporterDown:
        return None
