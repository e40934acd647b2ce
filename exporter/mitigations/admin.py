"""The admin API's mitigation routes (exporter/admin.py serves them on the root-only socket):

    GET    /mitigations                              every mitigation's status
    PUT    /mitigations/<name>                       apply: {"version", "mode", "lists", "expires"
                                                     or "ttl", "attach", "knobs"} as in the config
    PUT    /mitigations/<name>/mode                  {"mode": "monitor" | "enforce"}, no reload
    PUT    /mitigations/<name>/lists/<list>          {"entries": [...]}: replace the list, no reload
    DELETE /mitigations/<name>                       revoke: unload now, stay off until applied again

Bad input is a 400 naming the field, an unknown mitigation or list a 404, a mitigation that
is not running a 409 (exporter/admin_routes.py: the status comes from the error's type).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

from core.fields import Field, Reader, Section
from core.mitigation import NotRunning
from exporter.admin_routes import BadRequest, Conflict, NotFound, Request, Route
from exporter.mitigations.config import MODE, read_one

MODE_BODY = Section((replace(MODE, required=True),), expect="a JSON object")
LIST_BODY = Section((Field("entries", list, required=True, expect="an array of entries"),),
                    expect="a JSON object")


def routes(mitigations: Callable[[], object]) -> list[Route]:
    """`mitigations()`: the exporter's Mitigations (exporter/mitigations/manager.py)."""
    def status(req: Request) -> tuple[int, dict]:
        return 200, {"ok": True, "mitigations": mitigations().status()}

    def apply(req: Request) -> tuple[int, dict]:
        name, m = req.name(), mitigations()
        r = Reader(req.endpoint)
        mc = read_one(r, name, req.read_body(), "body")
        if r.problems:
            raise BadRequest.of(r.problems)
        if mc is None:   # enabled = false
            found = m.revoke(name)
            return 200, {"ok": True, "revoked": name if found else None}
        error = m.apply(mc)
        return (200 if error is None else 422), {"ok": error is None, "error": error,
                                                 "mitigation": _status(m, name)}

    def mode(req: Request) -> tuple[int, dict]:
        name, body, m = req.name(), req.body(MODE_BODY), mitigations()
        with _errors():
            m.set_mode(name, body["mode"])
        return 200, {"ok": True, "mitigation": _status(m, name)}

    def replace_list(req: Request) -> tuple[int, dict]:
        name, body, m = req.name(), req.body(LIST_BODY), mitigations()
        with _errors():
            change = m.replace_list(name, req.params["list"], body["entries"])
        return 200, {"ok": True, **change, "mitigation": _status(m, name)}

    def revoke(req: Request) -> tuple[int, dict]:
        name = req.name()
        if not mitigations().revoke(name):
            raise NotFound(f"no mitigation {name}")
        return 200, {"ok": True, "revoked": name}

    return [Route("GET", "/mitigations", status),
            Route("PUT", "/mitigations/{name}", apply),
            Route("DELETE", "/mitigations/{name}", revoke),
            Route("PUT", "/mitigations/{name}/mode", mode),
            Route("PUT", "/mitigations/{name}/lists/{list}", replace_list)]


class _errors:
    """The manager's errors as admin errors, by type: bad entries (ValueError) 400, not
    running 409, no such list or program (LookupError) 404."""

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if kind is None:
            return False
        if issubclass(kind, ValueError):
            raise BadRequest(str(e)) from e
        if issubclass(kind, NotRunning):
            raise Conflict(str(e)) from e
        if issubclass(kind, LookupError):
            raise NotFound(str(e).strip("'\"")) from e
        return False


def _status(mitigations, name: str) -> dict | None:
    return next((m for m in mitigations.status() if m["name"] == name), None)
