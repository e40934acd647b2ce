"""The local admin API: HTTP over a root-only UNIX socket. The orchestrator drives this.

    GET    /status                          same JSON as the public /status
    POST   /reload                          re-read the config file (like SIGHUP)
    PUT    /programs/<name>                 {"version": "1.2.0", "knobs": {...}, "digest": "..."}
                                            load it, or upgrade what runs (new before old goes)
    DELETE /programs/<name>                 unload
    ...    /mitigations...                  see exporter/mitigations/admin.py

Replies are JSON: {"ok": true, ...} or {"ok": false, "error": "..."} with a 4xx/5xx code.
Access control is the socket file's mode (0600, owned by root).
"""
from __future__ import annotations

import json
import logging
import os
import re
import socketserver
from http.server import BaseHTTPRequestHandler
from typing import Protocol

from core.manifest import NAME_RE
from exporter.mitigations import admin as mitigation_admin
from exporter.mitigations.manager import Mitigations
from exporter.config import VERSION_RE, ProgramConfig

log = logging.getLogger("bpfleet.admin")
MAX_BODY = 1 << 16
DIGEST_RE = re.compile(r"[0-9a-f]{64}")


class AdminTarget(Protocol):
    """All the admin API needs (exporter/daemon/app.py's ExporterApp is one)."""
    mitigations: Mitigations

    def status(self) -> dict: ...

    def reload(self) -> dict: ...

    def deploy(self, pc: ProgramConfig, digest: str | None = None) -> str | None: ...

    def unload(self, name: str) -> bool: ...


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def parse_deploy(name: str, body: dict) -> ProgramConfig:
    """Validate a PUT /programs/<name> body; ValueError says which field is wrong."""
    if not NAME_RE.match(name):
        raise ValueError(f"path: {name!r} is not a program name")
    if not isinstance(body, dict):
        raise ValueError("body: expected a JSON object")
    unknown = set(body) - {"version", "knobs", "digest"}
    if unknown:
        raise ValueError(f"body: unknown field(s) {', '.join(sorted(unknown))}")
    version = body.get("version", "latest")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ValueError(f"body.version: {version!r} is not \"latest\" or MAJOR.MINOR.PATCH")
    knobs = body.get("knobs", {})
    if not isinstance(knobs, dict) or not all(isinstance(v, (int, bool)) for v in knobs.values()):
        raise ValueError("body.knobs: expected an object of knob name → integer or boolean")
    digest = body.get("digest")
    if digest is not None and (not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest)):
        raise ValueError("body.digest: expected a sha256 hex digest")
    return ProgramConfig(name, version, knobs)


def make_admin_server(path: str, exporter: AdminTarget) -> _UnixHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def address_string(self):
            return "admin-socket"

        def log_message(self, fmt, *args):
            log.info("admin: " + fmt, *args)

        def _reply(self, code: int, payload: dict) -> None:
            body = json.dumps(payload, indent=2).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> dict | None:
            raw = self.headers.get("Content-Length") or "0"
            if not raw.isdigit():
                self._reply(400, {"ok": False, "error": f"Content-Length: {raw!r} is not a number"})
                return None
            n = int(raw)
            if n > MAX_BODY:
                self._reply(413, {"ok": False, "error": f"body larger than {MAX_BODY} bytes"})
                return None
            try:
                return json.loads(self.rfile.read(n) or b"{}")
            except ValueError as e:
                self._reply(400, {"ok": False, "error": f"body: not JSON: {e}"})
                return None

        def _program_name(self) -> str | None:
            parts = self.path.strip("/").split("/")
            return parts[1] if len(parts) == 2 and parts[0] == "programs" else None

        def _mitigation(self, method: str) -> bool:
            """Serve a /mitigations route; -> False when the path is not one."""
            if not self.path.startswith("/mitigations"):
                return False
            body = self._body() if method == "PUT" else {}
            if body is not None:
                self._reply(*mitigation_admin.handle(method, self.path, body, exporter.mitigations))
            return True

        def do_GET(self):
            if self._mitigation("GET"):
                return
            if self.path == "/status":
                self._reply(200, {"ok": True, **exporter.status()})
            else:
                self._reply(404, {"ok": False, "error": f"no such endpoint: GET {self.path}"})

        def do_POST(self):
            if self.path != "/reload":
                return self._reply(404, {"ok": False, "error": f"no such endpoint: POST {self.path}"})
            errors = exporter.reload()
            self._reply(200 if not errors else 422, {"ok": not errors, "errors": errors})

        def do_PUT(self):
            if self._mitigation("PUT"):
                return
            name = self._program_name()
            if name is None:
                return self._reply(404, {"ok": False, "error": f"no such endpoint: PUT {self.path}"})
            body = self._body()
            if body is None:
                return
            try:
                pc = parse_deploy(name, body)
            except ValueError as e:
                return self._reply(400, {"ok": False, "error": str(e)})
            error = exporter.deploy(pc, body.get("digest"))
            status = next((s for s in exporter.status()["programs"] if s["name"] == name), None)
            self._reply(200 if error is None else 422, {"ok": error is None, "error": error, "program": status})

        def do_DELETE(self):
            if self._mitigation("DELETE"):
                return
            name = self._program_name()
            if name is None:
                return self._reply(404, {"ok": False, "error": f"no such endpoint: DELETE {self.path}"})
            found = exporter.unload(name)
            self._reply(200 if found else 404, {"ok": found, "error": None if found else f"{name} is not loaded"})

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # a stale socket from a previous run
    old_umask = os.umask(0o177)
    try:
        server = _UnixHTTPServer(path, Handler)
    finally:
        os.umask(old_umask)
    return server
