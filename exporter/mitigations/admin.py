"""The admin API's mitigation routes (exporter/admin.py serves them on the root-only socket):

    GET    /mitigations                              every mitigation's status
    PUT    /mitigations/<name>                       apply: {"version", "mode", "lists", "expires"
                                                     or "ttl", "attach", "knobs"} as in the config
    PUT    /mitigations/<name>/mode                  {"mode": "monitor" | "enforce"}, no reload
    PUT    /mitigations/<name>/lists/<list>          {"entries": [...]}: replace the list, no reload
    DELETE /mitigations/<name>                       revoke: unload now, stay off until applied again

-> (HTTP code, JSON reply). Bad input is a 400 naming the field, an unknown or stopped
mitigation a 404 or 409.
"""
from __future__ import annotations

from core.manifest import NAME_RE
from core.problems import ProblemsError
from exporter.mitigations.config import parse_one

ROUTES = ("GET /mitigations", "PUT /mitigations/<name>", "PUT /mitigations/<name>/mode",
          "PUT /mitigations/<name>/lists/<list>", "DELETE /mitigations/<name>")


def handle(method: str, path: str, body, mitigations) -> tuple[int, dict]:
    parts = path.strip("/").split("/")
    if parts[0] != "mitigations":
        return 404, {"ok": False, "error": f"no such endpoint: {method} {path}"}
    if method == "GET" and len(parts) == 1:
        return 200, {"ok": True, "mitigations": mitigations.status()}
    if len(parts) < 2 or not NAME_RE.match(parts[1]):
        return 404, {"ok": False, "error": f"no such endpoint: {method} {path} (routes: {', '.join(ROUTES)})"}
    name, rest = parts[1], parts[2:]
    if method == "DELETE" and not rest:
        found = mitigations.revoke(name)
        return (200 if found else 404), {"ok": found, "revoked": name if found else None,
                                         "error": None if found else f"no mitigation {name}"}
    if method != "PUT" or not isinstance(body, dict):
        if method == "PUT":
            return 400, {"ok": False, "error": "body: expected a JSON object"}
        return 404, {"ok": False, "error": f"no such endpoint: {method} {path} (routes: {', '.join(ROUTES)})"}
    try:
        if not rest:
            return _apply(name, body, mitigations)
        if rest == ["mode"]:
            _only(body, {"mode"})
            mitigations.set_mode(name, body.get("mode"))
            return 200, {"ok": True, "mitigation": _status(mitigations, name)}
        if len(rest) == 2 and rest[0] == "lists":
            _only(body, {"entries"})
            change = mitigations.replace_list(name, rest[1], body.get("entries"))
            return 200, {"ok": True, **change, "mitigation": _status(mitigations, name)}
    except ValueError as e:
        return 400, {"ok": False, "error": str(e)}
    except LookupError as e:
        return 409 if "not running" in str(e) else 404, {"ok": False, "error": str(e).strip("'\"")}
    return 404, {"ok": False, "error": f"no such endpoint: {method} {path} (routes: {', '.join(ROUTES)})"}


def _only(body: dict, allowed: set) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"body: unknown field(s) {', '.join(sorted(unknown))} (expected {', '.join(sorted(allowed))})")


def _apply(name: str, body: dict, mitigations) -> tuple[int, dict]:
    problems: list = []
    mc = parse_one(name, body, "body", "body", problems)
    if problems:
        return 400, {"ok": False, "error": str(ProblemsError(problems))}
    if mc is None:   # enabled = false
        found = mitigations.revoke(name)
        return 200, {"ok": True, "revoked": name if found else None}
    error = mitigations.apply(mc)
    return (200 if error is None else 422), {"ok": error is None, "error": error,
                                             "mitigation": _status(mitigations, name)}


def _status(mitigations, name: str) -> dict | None:
    return next((m for m in mitigations.status() if m["name"] == name), None)
