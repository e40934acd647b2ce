"""The admin API's route table, served by the real admin server (exporter/admin.py) on a UNIX
socket, with an exporter and mitigations that record what they were asked: unknown paths are
404, a known path with another method 405 with Allow, bad bodies 400 naming the field, a
mitigation that is not running 409 - each status from the error's type."""
from __future__ import annotations

import http.client
import json
import socket
import threading

import pytest

from core.mitigation import NotRunning
from exporter.admin import make_admin_server
from exporter.admin_routes import BadRequest, Conflict, NotFound, Route, dispatch

DIGEST = "ab" * 32


class FakeSupervisor:
    def __init__(self):
        self.deployed, self.unloaded = [], []

    def deploy(self, pc, digest):
        self.deployed.append((pc, digest))
        return None if pc.version != "9.9.9" else "version '9.9.9' of syscalls is not in the registry"

    def unload(self, name):
        self.unloaded.append(name)
        return name == "syscalls"


class FakeMitigations:
    def __init__(self):
        self.calls = []

    def status(self):
        return [{"name": "xdp_denylist", "state": "enforce"}]

    def apply(self, mc):
        self.calls.append(("apply", mc.name, mc.mode))
        return None

    def revoke(self, name):
        if name != "xdp_denylist":
            return False
        self.calls.append(("revoke", name))
        return True

    def set_mode(self, name, mode):
        if name != "xdp_denylist":
            raise NotRunning(f"mitigation {name} is not running (state not_applicable)")
        self.calls.append(("mode", name, mode))

    def replace_list(self, name, list_name, entries):
        if list_name != "deny_v4":
            raise LookupError(f"{name} has no list {list_name!r} (lists: deny_v4)")
        if any("/33" in e for e in entries):
            raise ValueError("body.entries[0]: '10.0.0.1/33' is not an IPv4 prefix")
        self.calls.append(("list", name, list_name, entries))
        return {"entries": len(entries), "added": len(entries), "removed": 0}


class FakeExporter:
    def __init__(self):
        self.supervisor, self.mitigations, self.reloads = FakeSupervisor(), FakeMitigations(), 0

    def status(self):
        return {"programs": [{"name": "syscalls", "state": "attached"}]}

    def reload(self):
        self.reloads += 1
        return []

    # the typed exporter's own deploy/unload (exporter/daemon/app.py), where it has them
    def deploy(self, pc, digest=None):
        return self.supervisor.deploy(pc, digest)

    def unload(self, name):
        return self.supervisor.unload(name)


@pytest.fixture
def admin(tmp_path):
    exporter = FakeExporter()
    path = str(tmp_path / "run" / "admin.sock")
    server = make_admin_server(path, exporter)
    t = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    t.start()

    def request(method, url, body=None, raw: bytes | None = None):
        class Conn(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
        c = Conn("localhost", timeout=10)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        c.request(method, url, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = c.getresponse()
        reply = json.loads(r.read())
        c.close()
        return r.status, reply, dict(r.getheaders())
    request.exporter = exporter
    request.path = path
    yield request
    server.shutdown()
    server.server_close()
    t.join()


ROUTING = [
    # (id, method, path, body, status, words in the error, Allow header)
    ("unknown path", "GET", "/metrics", None, 404, ["no such endpoint: GET /metrics", "PUT /programs/{name}"], None),
    ("unknown sub-path", "PUT", "/programs/syscalls/knobs", {}, 404, ["no such endpoint"], None),
    ("unknown mitigation sub-path", "PUT", "/mitigations/xdp_denylist/nope", {}, 404, ["no such endpoint"], None),
    ("POST to a program", "POST", "/programs/syscalls", {}, 405, ["method POST is not allowed"], "DELETE, PUT"),
    ("GET a program", "GET", "/programs/syscalls", None, 405, ["(allowed: DELETE, PUT)"], "DELETE, PUT"),
    ("PATCH a program", "PATCH", "/programs/syscalls", {}, 405, ["PATCH"], "DELETE, PUT"),
    ("PUT /status", "PUT", "/status", {}, 405, ["allowed: GET"], "GET"),
    ("GET /reload", "GET", "/reload", None, 405, ["allowed: POST"], "POST"),
    ("DELETE all mitigations", "DELETE", "/mitigations", None, 405, ["allowed: GET"], "GET"),
    ("GET a mitigation's mode", "GET", "/mitigations/xdp_denylist/mode", None, 405, ["allowed: PUT"], "PUT"),
    ("bad program name", "PUT", "/programs/Sys-Calls", {}, 400, ["path: 'Sys-Calls' is not a program name"], None),
    ("bad version", "PUT", "/programs/syscalls", {"version": "1.0"}, 400,
     ["body.version: '1.0' is not \"latest\" or MAJOR.MINOR.PATCH"], None),
    ("every bad field", "PUT", "/programs/syscalls", {"version": "x", "knobs": {"a": 0.5}, "digest": "abc"}, 400,
     ["body.version", "body.knobs.a", "body.digest"], None),
    ("unknown body field", "PUT", "/programs/syscalls", {"versoin": "1.0.0"}, 400, ["body.versoin: unknown field"], None),
    ("body not an object", "PUT", "/programs/syscalls", [], 400, ["body: expected a JSON object"], None),
    ("deploy refused", "PUT", "/programs/syscalls", {"version": "9.9.9"}, 422, ["not in the registry"], None),
    ("unload what is not loaded", "DELETE", "/programs/tcp", None, 404, ["tcp is not loaded"], None),
    ("bad mitigation name", "DELETE", "/mitigations/No-Such", None, 400, ["path: 'No-Such'"], None),
    ("bad mode", "PUT", "/mitigations/xdp_denylist/mode", {"mode": "block"}, 400,
     ["body.mode: 'block' is not one of: 'monitor', 'enforce'"], None),
    ("mode missing", "PUT", "/mitigations/xdp_denylist/mode", {}, 400, ["body.mode: required field is missing"], None),
    ("mode of one not running", "PUT", "/mitigations/other/mode", {"mode": "enforce"}, 409, ["not running"], None),
    ("entries not an array", "PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": "10.0.0.0/8"}, 400,
     ["body.entries: expected an array of entries"], None),
    ("bad entry", "PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": ["10.0.0.1/33"]}, 400,
     ["body.entries[0]"], None),
    ("no such list", "PUT", "/mitigations/xdp_denylist/lists/nope", {"entries": []}, 404, ["no list 'nope'"], None),
    ("bad apply", "PUT", "/mitigations/xdp_denylist", {"mode": "enforce", "ttl": "soon", "colour": 1}, 400,
     ["body.ttl", "body.colour: unknown field"], None),
    ("revoke what is not there", "DELETE", "/mitigations/other", None, 404, ["no mitigation other"], None),
]


@pytest.mark.parametrize("method, path, body, status, words, allow", [r[1:] for r in ROUTING],
                         ids=[r[0] for r in ROUTING])
def test_routing_and_errors(admin, method, path, body, status, words, allow):
    code, reply, headers = admin(method, path, body)
    assert code == status, reply
    assert reply["ok"] is False and all(w in reply["error"] for w in words), reply
    assert headers.get("Allow") == allow
    # a refused request changed nothing
    if code != 422:
        assert admin.exporter.supervisor.deployed == [] and admin.exporter.mitigations.calls == []


def test_bad_body_problems_carry_the_endpoint_and_fields(admin):
    code, reply, _ = admin("PUT", "/programs/syscalls", {"version": "x", "knobs": {"a": 0.5}})
    assert code == 400
    assert [(p["file"], p["field"]) for p in reply["problems"]] == [
        ("PUT /programs/syscalls", "body.version"), ("PUT /programs/syscalls", "body.knobs.a")]


def test_body_not_json(admin):
    code, reply, _ = admin("PUT", "/programs/syscalls", raw=b"{not json")
    assert code == 400 and reply["error"].startswith("body: not JSON"), reply


@pytest.mark.parametrize("length, status, words", [
    ("two", 400, "Content-Length: 'two' is not a number"),
    (str(1 << 20), 413, "body larger than 65536 bytes"),
])
def test_bad_content_length(admin, length, status, words):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(admin.path)
    s.sendall(f"PUT /programs/syscalls HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.0 {status} ".encode()), head
    assert json.loads(body)["error"] == words
    assert admin.exporter.supervisor.deployed == []


def test_good_requests_reach_the_exporter(admin):
    e = admin.exporter
    assert admin("GET", "/status")[:2] == (200, {"ok": True, **e.status()})
    assert admin("GET", "/status?verbose=1")[0] == 200
    assert admin("POST", "/reload")[0] == 200 and e.reloads == 1
    code, reply, _ = admin("PUT", "/programs/syscalls", {"version": "1.2.0", "knobs": {"a": 1}, "digest": DIGEST})
    assert code == 200 and reply["program"] == {"name": "syscalls", "state": "attached"}, reply
    ((pc, digest),) = e.supervisor.deployed
    assert (pc.name, pc.version, pc.knobs, digest) == ("syscalls", "1.2.0", {"a": 1}, DIGEST)
    assert admin("DELETE", "/programs/syscalls")[:2] == (200, {"ok": True, "error": None})
    assert admin("GET", "/mitigations")[1]["mitigations"] == e.mitigations.status()
    assert admin("PUT", "/mitigations/xdp_denylist/mode", {"mode": "monitor"})[0] == 200
    code, reply, _ = admin("PUT", "/mitigations/xdp_denylist/lists/deny_v4", {"entries": ["192.0.2.0/24"]})
    assert code == 200 and reply["entries"] == 1
    assert admin("PUT", "/mitigations/xdp_denylist", {"mode": "enforce"})[0] == 200
    assert admin("PUT", "/mitigations/xdp_denylist", {"enabled": False})[1] == {"ok": True, "revoked": "xdp_denylist"}
    assert e.mitigations.calls == [("mode", "xdp_denylist", "monitor"),
                                   ("list", "xdp_denylist", "deny_v4", ["192.0.2.0/24"]),
                                   ("apply", "xdp_denylist", "enforce"), ("revoke", "xdp_denylist")]


def test_status_comes_from_the_error_type_not_its_text():
    def conflict(req):
        raise Conflict("no such endpoint")       # text that once meant 404

    def lookup(req):
        raise NotFound("is not running")         # text that once meant 409
    routes = [Route("PUT", "/a", conflict), Route("PUT", "/b", lookup),
              Route("PUT", "/c", lambda req: (_ for _ in ()).throw(BadRequest("not running")))]
    assert [dispatch(routes, "PUT", p, dict)[0] for p in ("/a", "/b", "/c")] == [409, 404, 400]
