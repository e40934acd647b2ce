"""The admin API's one route table and its typed errors. Pure: no sockets (exporter/admin.py
serves it over HTTP).

A route is (method, path pattern, handler); `{param}` in a pattern matches one path segment.
A handler gets a Request and returns (HTTP status, JSON reply), or raises an AdminError whose
class carries the status: BadRequest 400, NotFound 404, MethodNotAllowed 405, Conflict 409,
PayloadTooLarge 413. No status is ever chosen from an error's text.

    dispatch(ROUTES, "PUT", "/programs/syscalls", read_body)  ->  (status, reply, headers)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from core import names
from core.fields import Reader, Section
from core.problems import Problem


class AdminError(Exception):
    status = 500

    def __init__(self, message: str, problems: list[Problem] = (), headers: dict | None = None):
        super().__init__(message)
        self.message, self.problems, self.headers = message, list(problems), dict(headers or {})

    def reply(self) -> dict:
        out = {"ok": False, "error": self.message}
        if self.problems:
            out["problems"] = [p.as_dict() for p in self.problems]
        return out


class BadRequest(AdminError):
    status = 400

    @classmethod
    def of(cls, problems: list[Problem]) -> BadRequest:
        """The request's problems; the text names each field (body.version: ...)."""
        return cls("; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems), problems)


class NotFound(AdminError):
    status = 404


class MethodNotAllowed(AdminError):
    status = 405


class Conflict(AdminError):
    status = 409


class PayloadTooLarge(AdminError):
    status = 413


@dataclass
class Request:
    method: str
    path: str
    params: dict                       # {param} of the pattern -> the path segment
    read_body: Callable[[], object]    # the JSON body; raises BadRequest / PayloadTooLarge

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path}"

    def name(self) -> str:
        """The {name} in the path: a program or mitigation name, else BadRequest."""
        name = self.params["name"]
        if not names.is_name(name):
            raise BadRequest.of([Problem(self.endpoint, "path", f"{name!r} is not a program name")])
        return name

    def body(self, section: Section):
        """The body read by `section` (where "body"), or BadRequest naming every bad field."""
        r = Reader(self.endpoint)
        values = section.read(r, self.read_body(), "body")
        if r.problems:
            raise BadRequest.of(r.problems)
        return values


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str                                  # "/mitigations/{name}/lists/{list}"
    handler: Callable[[Request], tuple[int, dict]]
    segments: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "segments", tuple(self.pattern.strip("/").split("/")))

    def match(self, parts: list[str]) -> dict | None:
        if len(parts) != len(self.segments):
            return None
        params = {}
        for want, got in zip(self.segments, parts):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


def dispatch(routes, method: str, path: str, read_body: Callable[[], object]) -> tuple[int, dict, dict]:
    """-> (status, JSON reply, extra headers). Unknown path: 404; known path, other method:
    405 with Allow."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    allowed = []
    try:
        for route in routes:
            params = route.match(parts)
            if params is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            status, reply = route.handler(Request(method, path, params, read_body))
            return status, reply, {}
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            raise MethodNotAllowed(f"method {method} is not allowed on {path} (allowed: {allow})",
                                   headers={"Allow": allow})
        raise NotFound(f"no such endpoint: {method} {path} (routes: "
                       f"{', '.join(f'{r.method} {r.pattern}' for r in routes)})")
    except AdminError as e:
        return e.status, e.reply(), e.headers
