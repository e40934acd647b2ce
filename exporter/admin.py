"""The local admin API: HTTP over a root-only UNIX socket. The orchestrator drives this.

    GET    /status                          same JSON as the public /status
    POST   /reload                          re-read the config file (like SIGHUP)
    PUT    /programs/<name>                 {"version": "1.2.0", "knobs": {...}, "digest": "..."}
                                            load it, or upgrade what runs (new before old goes)
    DELETE /programs/<name>                 unload
    ...    /mitigations...                  see exporter/mitigations/admin.py

One route table (exporter/admin_routes.py) serves both. Replies are JSON: {"ok": true, ...} or
{"ok": false, "error": "...", "problems": [{file, field, message}]} with a 4xx/5xx code; an
unknown path is a 404, a known path with another method a 405 with Allow.
Access control is the socket file's mode (0600, owned by root).
"""
from __future__ import annotations

import json
import logging
import os
import socketserver
from http.server import BaseHTTPRequestHandler
from typing import Protocol

from core import names
from core.fields import Field, Reader, Section
from core.problems import Problem, ProblemsError
from exporter.admin_routes import AdminError, BadRequest, NotFound, PayloadTooLarge, Request, Route, dispatch
from exporter.config_programs import KNOBS, VERSION, ProgramConfig
from exporter.mitigations import admin as mitigation_admin
from exporter.mitigations.manager import Mitigations

log = logging.getLogger("bpfleet.admin")
MAX_BODY = 1 << 16
METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH")

DEPLOY = Section((
    VERSION, KNOBS,
    Field("digest", expect="a sha256 hex digest", check=lambda d: d is None or names.is_digest(d),
          help="refuse the artifact unless its index has this sha256"),
), expect="a JSON object")


class AdminTarget(Protocol):
    """All the admin API needs (exporter/daemon/app.py's ExporterApp is one)."""
    mitigations: Mitigations

    def status(self) -> dict: ...

    def reload(self) -> dict: ...

    def deploy(self, pc: ProgramConfig, digest: str | None = None) -> str | None: ...

    def unload(self, name: str) -> bool: ...


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def parse_deploy(name: str, body) -> ProgramConfig:
    """Read a PUT /programs/<name> body; ProblemsError names every bad field."""
    r = Reader(f"PUT /programs/{name}")
    if not names.is_name(name):
        r.bad("path", f"{name!r} is not a program name")
    values = DEPLOY.read(r, body, "body")
    r.raise_if_any()
    values.pop("digest", None)
    return ProgramConfig(name, **values)


def routes(exporter: AdminTarget) -> list[Route]:
    def status(req: Request) -> tuple[int, dict]:
        return 200, {"ok": True, **exporter.status()}

    def reload(req: Request) -> tuple[int, dict]:
        errors = exporter.reload()
        return (200 if not errors else 422), {"ok": not errors, "errors": errors}

    def deploy(req: Request) -> tuple[int, dict]:
        name, body = req.params["name"], req.read_body()
        try:
            pc = parse_deploy(name, body)
        except ProblemsError as e:
            raise BadRequest.of(e.problems) from None
        error = exporter.deploy(pc, body.get("digest"))
        st = next((s for s in exporter.status()["programs"] if s["name"] == name), None)
        return (200 if error is None else 422), {"ok": error is None, "error": error, "program": st}

    def unload(req: Request) -> tuple[int, dict]:
        name = req.name()
        if not exporter.unload(name):
            raise NotFound(f"{name} is not loaded")
        return 200, {"ok": True, "error": None}

    return [Route("GET", "/status", status),
            Route("POST", "/reload", reload),
            Route("PUT", "/programs/{name}", deploy),
            Route("DELETE", "/programs/{name}", unload),
            *mitigation_admin.routes(lambda: exporter.mitigations)]


def read_json_body(headers, rfile) -> object:
    """The request's JSON body ({} when there is none)."""
    raw = headers.get("Content-Length") or "0"
    if not raw.isdigit():
        raise BadRequest(f"Content-Length: {raw!r} is not a number",
                         [Problem("request", "Content-Length", f"{raw!r} is not a number")])
    n = int(raw)
    if n > MAX_BODY:
        raise PayloadTooLarge(f"body larger than {MAX_BODY} bytes")
    try:
        return json.loads(rfile.read(n) or b"{}")
    except ValueError as e:
        raise BadRequest(f"body: not JSON: {e}") from None


def make_admin_server(path: str, exporter: AdminTarget) -> _UnixHTTPServer:
    table = routes(exporter)

    class Handler(BaseHTTPRequestHandler):
        def address_string(self):
            return "admin-socket"

        def log_message(self, fmt, *args):
            log.info("admin: " + fmt, *args)

        def _serve(self) -> None:
            read = []   # the body, or why it is bad: read at most once, only by a route that wants it

            def read_body():
                if not read:
                    try:
                        read.append(read_json_body(self.headers, self.rfile))
                    except AdminError as e:
                        read.append(e)
                if isinstance(read[0], AdminError):
                    raise read[0]
                return read[0]
            code, payload, headers = dispatch(table, self.command, self.path, read_body)
            if not read:   # drain what the route did not read, so that the client's send completes
                n = self.headers.get("Content-Length") or "0"
                self.rfile.read(int(n) if n.isdigit() and int(n) <= MAX_BODY else 0)
            data = json.dumps(payload, indent=2).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    for method in METHODS:
        setattr(Handler, f"do_{method}", Handler._serve)

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # a stale socket from a previous run
    old_umask = os.umask(0o177)
    try:
        server = _UnixHTTPServer(path, Handler)
    finally:
        os.umask(old_umask)
    return server
