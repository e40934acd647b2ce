"""Scrapes of the same moment share one rendered body (exporter/snapshot.py SharedBodies, used
by exporter/daemon/app.py ExporterApp.scrape): the renderer runs once per snapshot and format, however
many scrapers ask at once, and every one of them gets the same bytes."""
from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from exporter.daemon import app as daemon
from exporter.config import Config
from exporter.exposition.text import PROTOBUF_CONTENT_TYPE
from exporter.http_server import make_server
from exporter.snapshot import SharedBodies, Snapshot

N = 16


def snap(monotonic: float) -> Snapshot:
    return Snapshot(time_unix_ns=int(monotonic * 1e9), monotonic=monotonic, programs=(), slots=(),
                    read_seconds=0.0)


@pytest.fixture
def exporter(tmp_path, monkeypatch):
    """An Exporter with no programs whose snapshot source and renderers are counted."""
    exp = daemon.ExporterApp(Config("<test>", programs={}), str(tmp_path))
    calls = {"text": 0, "protobuf": 0, "snapshots": 0}
    text_render, proto_render = daemon.render, daemon.exposition_proto.render

    def counting(fmt, real):
        def render(families):
            calls[fmt] += 1
            return real(families)
        return render

    monkeypatch.setattr(daemon, "render", counting("text", text_render))
    monkeypatch.setattr(daemon.exposition_proto, "render", counting("protobuf", proto_render))
    moment = exp.supervisor.snapshot()

    def one_moment():
        calls["snapshots"] += 1
        return moment

    monkeypatch.setattr(exp.snapshots, "get", one_moment)
    exp.calls = calls
    return exp


def concurrently(fn, n: int = N) -> list:
    start = threading.Barrier(n)

    def go(_):
        start.wait()
        return fn()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_concurrent_scrapes_of_one_moment_render_once(exporter):
    bodies = concurrently(lambda: exporter.scrape("text"))
    assert exporter.calls["snapshots"] == N
    assert exporter.calls["text"] == 1
    assert all(b is bodies[0] for b in bodies)
    assert b"bpfleet_snapshot_read_duration_seconds" in bodies[0]


def test_each_format_is_rendered_once_per_moment(exporter):
    bodies = concurrently(lambda: exporter.scrape("protobuf")) + concurrently(lambda: exporter.scrape("text"))
    assert (exporter.calls["protobuf"], exporter.calls["text"]) == (1, 1)
    assert len({id(b) for b in bodies}) == 2 and bodies[0] != bodies[-1]


def test_http_scrapers_get_the_shared_body(exporter):
    server = make_server("127.0.0.1", 0, exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"

    def get(accept: str | None):
        req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.headers["Content-Type"], r.read()

    try:
        texts = concurrently(lambda: get(None))
        protos = concurrently(lambda: get(PROTOBUF_CONTENT_TYPE))
    finally:
        server.shutdown()
        server.server_close()
    assert (exporter.calls["text"], exporter.calls["protobuf"]) == (1, 1)
    assert len(set(texts)) == 1 and len(set(protos)) == 1
    assert protos[0][0] == PROTOBUF_CONTENT_TYPE and texts[0][1].startswith(b"# HELP")


class Moments:
    """A SnapshotCache stand-in: every get() is a snapshot finished now."""

    def __init__(self, max_age: float = 0.0):
        self.max_age, self.taken = max_age, []

    def get(self) -> Snapshot:
        self.taken.append(snap(time.monotonic()))
        return self.taken[-1]


def test_a_request_after_the_moment_gets_a_new_snapshot_and_render():
    moments, rendered = Moments(), []
    bodies = SharedBodies(moments)

    def render(s):
        rendered.append(s)
        return f"at {s.monotonic}".encode()

    first = bodies.get("text", render)
    second = bodies.get("text", render)      # asked after the first snapshot was finished
    assert first != second and rendered == moments.taken and len(rendered) == 2
    assert bodies.get("protobuf", render) != second and len(rendered) == 3


def test_within_max_age_the_body_is_shared():
    moments, rendered = Moments(max_age=3600.0), []
    bodies = SharedBodies(moments)
    render = lambda s: rendered.append(s) or b"body"   # noqa: E731
    assert [bodies.get("text", render) for _ in range(5)] == [b"body"] * 5
    assert len(moments.taken) == 1 and len(rendered) == 1 and bodies.renders == 1
