"""The host modules (playbooks/library/) in this test process, and a fake exporter admin API on a
UNIX socket for them to talk to.

A module imports its shared code the Ansible way (`from ansible.module_utils.bpfleet_admin
import …`); Ansible ships playbooks/module_utils/ with each module run. Here the same files are
registered under those names, so a module loads as it does on a host."""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import socketserver
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "playbooks" / "library"
MODULE_UTILS = ROOT / "playbooks" / "module_utils"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    sys.modules[name] = m
    spec.loader.exec_module(m)
    return m


def shared_imports(path: Path) -> list[str]:
    """The playbooks/module_utils/ names a file imports (ansible.module_utils.<name>)."""
    names = [n.module for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ansible.module_utils.")]
    return [n.split(".")[2] for n in names if (MODULE_UTILS / f"{n.split('.')[2]}.py").exists()]


def module_util(name: str):
    full = f"ansible.module_utils.{name}"
    if full not in sys.modules:
        for dep in shared_imports(MODULE_UTILS / f"{name}.py"):
            module_util(dep)
        _load(full, MODULE_UTILS / f"{name}.py")
    return sys.modules[full]


def host_module(name: str):
    for dep in shared_imports(LIBRARY / f"{name}.py"):
        module_util(dep)
    return _load(f"bpfleet_host_module_{name}", LIBRARY / f"{name}.py")


class FakeExporter:
    """The admin API the modules use, in memory: /status and /programs/<name>, /mitigations and
    /mitigations/<name>[/mode]. `requests` records (method, path, JSON body)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bpfl-fake-", dir="/tmp")   # AF_UNIX paths: 108 bytes
        self.socket = os.path.join(self.dir, "admin.sock")
        self.programs: dict[str, dict] = {}
        self.mitigations: dict[str, dict] = {}
        self.requests: list[tuple[str, str, object]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):   # the client address of a UNIX socket is ""
                pass

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw) if raw else None
                except ValueError:
                    return raw

            def _reply(self, code: int, body) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                body = self._body()
                fake.requests.append((self.command, self.path, body))
                self._reply(*fake.answer(self.command, self.path.strip("/").split("/"), body))

            do_GET = do_PUT = do_DELETE = _handle

        self.server = socketserver.ThreadingUnixStreamServer(self.socket, Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method: str, parts: list[str], body) -> tuple[int, object]:
        if parts == ["status"] and method == "GET":
            return 200, {"pid": 4242, "uptime_seconds": 1.5, "programs": list(self.programs.values())}
        if parts == ["echo"]:
            return 200, {"method": method, "body": body if not isinstance(body, bytes) else body.decode()}
        if parts == ["text"]:
            return 500, b"not json at all"
        if parts[0] == "programs" and len(parts) == 2 and method == "PUT":
            self.programs[parts[1]] = {"name": parts[1], "state": "attached", "error": None,
                                       "version": body["version"], "digest": body.get("digest"),
                                       "knobs": body.get("knobs") or {},
                                       "programs": {"p": {"run_time_ns": 10, "run_count": 2}}}
            return 200, {"ok": True}
        if parts[0] == "programs" and len(parts) == 2 and method == "DELETE":
            return (200, {"ok": True}) if self.programs.pop(parts[1], None) else (404, {"ok": False, "error": "no such program"})
        if parts == ["mitigations"] and method == "GET":
            return 200, {"mitigations": list(self.mitigations.values())}
        if parts[0] == "mitigations" and len(parts) == 2 and method == "PUT":
            self.mitigations[parts[1]] = {"name": parts[1], "state": body.get("mode", "monitor"),
                                          "mode": body.get("mode", "monitor"), "version": body.get("version")}
            return 200, {"ok": True, "mitigation": self.mitigations[parts[1]]}
        if parts[0] == "mitigations" and len(parts) == 3 and parts[2] == "mode" and method == "PUT":
            if parts[1] not in self.mitigations:
                return 409, {"ok": False, "error": f"{parts[1]} is not running"}
            self.mitigations[parts[1]].update(state=body["mode"], mode=body["mode"])
            return 200, {"ok": True}
        if parts[0] == "mitigations" and len(parts) == 2 and method == "DELETE":
            return (200, {"ok": True}) if self.mitigations.pop(parts[1], None) else (404, {"ok": False})
        return 404, {"ok": False, "error": f"no route {method} /{'/'.join(parts)}"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)
