"""A real OTLP receiver for tests: gRPC (MetricsService/Export, LogsService/Export) or HTTP
(POST /v1/metrics, /v1/logs with protobuf bodies), decoding the requests with
opentelemetry-proto, plus helpers that flatten requests into comparable Python values.

`delay` makes every export answer that many seconds late (a slow collector); `hold()` keeps
every export inside the receiver until `release()` (gRPC: `client_waiting()` says whether the
exporter is still waiting on one); `stop()` and `start()` again on the same port make it go away
and come back.
"""
from __future__ import annotations

import gzip
import threading
import time
import zlib
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc


@dataclass
class Received:
    time: float                 # time.time() when it arrived
    request: object             # ExportMetricsServiceRequest | ExportLogsServiceRequest
    headers: dict


class Receiver:
    def __init__(self, protocol: str = "grpc", port: int = 0):
        assert protocol in ("grpc", "http/protobuf")
        self.protocol, self.port = protocol, port
        self.metrics: list[Received] = []
        self.logs: list[Received] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self._holding, self._released, self._held_alive = False, threading.Event(), []
        self._server = None
        self._thread = None

    # ---- lifecycle ----
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Receiver":
        if self.protocol == "grpc":
            self._start_grpc()
        else:
            self._start_http()
        return self

    def stop(self) -> None:
        self.release()
        if self._server is None:
            return
        if self.protocol == "grpc":
            self._server.stop(grace=0).wait(5)
        else:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
        self._server = None

    def hold(self) -> None:
        self._released.clear()
        self._holding = True

    def release(self) -> None:
        self._holding = False
        self._released.set()

    def client_waiting(self) -> bool:
        """Is an exporter waiting on an export the receiver holds (its client has not given up)?"""
        with self._lock:
            return any(alive() for alive in self._held_alive)

    def _record(self, kind: str, request, headers: dict, alive=lambda: True) -> None:
        if self._holding:
            with self._lock:
                self._held_alive.append(alive)
            self._released.wait(120)
            with self._lock:
                self._held_alive.remove(alive)
        if self.delay:
            time.sleep(self.delay)
        with self._lock:
            getattr(self, kind).append(Received(time.time(), request, headers))

    def _start_grpc(self) -> None:
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                receiver._record("metrics", request, dict(context.invocation_metadata()),
                                 context.is_active)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request, context):
                receiver._record("logs", request, dict(context.invocation_metadata()),
                                 context.is_active)
                return logs_service_pb2.ExportLogsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        assert self.port, "could not bind the gRPC receiver"
        server.start()
        self._server = server

    def _start_http(self) -> None:
        receiver = self
        kinds = {"/v1/metrics": ("metrics", metrics_service_pb2.ExportMetricsServiceRequest,
                                 metrics_service_pb2.ExportMetricsServiceResponse),
                 "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest,
                              logs_service_pb2.ExportLogsServiceResponse)}

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind = kinds.get(self.path)
                if kind is None or self.headers.get("Content-Type") != "application/x-protobuf":
                    return self._answer(404 if kind is None else 415, b"")
                enc = self.headers.get("Content-Encoding", "")
                if enc == "gzip":
                    body = gzip.decompress(body)
                elif enc == "deflate":
                    body = zlib.decompress(body)
                request = kind[1]()
                request.ParseFromString(body)
                receiver._record(kind[0], request, {k.lower(): v for k, v in self.headers.items()})
                self._answer(200, kind[2]().SerializeToString())

            def _answer(self, code: int, payload: bytes) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/x-protobuf")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass   # the client gave up (timeout) while we were slow

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._server = server

    # ---- reading ----
    def snapshot(self, kind: str) -> list[Received]:
        with self._lock:
            return list(getattr(self, kind))

    def wait(self, kind: str, count: int = 1, timeout: float = 15.0, after: float = 0.0) -> list[Received]:
        """Wait until `count` requests of `kind` arrived after time `after`; return them all."""
        end = time.monotonic() + timeout
        while True:
            got = [r for r in self.snapshot(kind) if r.time > after]
            if len(got) >= count:
                return got
            if time.monotonic() > end:
                raise AssertionError(f"{len(got)} {kind} request(s) within {timeout}s, wanted {count}")
            time.sleep(0.05)


# ---- flattening OTLP protobuf into plain values ----

def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attrs(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


@dataclass(frozen=True)
class Point:
    scope: str
    scope_version: str
    metric: str
    kind: str                   # "sum" | "gauge" | "histogram" | "exponential_histogram"
    unit: str
    temporality: int            # AggregationTemporality: 1 delta, 2 cumulative; 0 for gauges
    monotonic: bool
    attributes: tuple           # sorted (key, value)
    start: int
    time: int
    point: object               # the protobuf data point


def points(request) -> list[Point]:
    out = []
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                for p in data.data_points:
                    out.append(Point(sm.scope.name, sm.scope.version, m.name, kind, m.unit,
                                     getattr(data, "aggregation_temporality", 0),
                                     getattr(data, "is_monotonic", False),
                                     tuple(sorted(attrs(p.attributes).items())),
                                     p.start_time_unix_nano, p.time_unix_nano, p))
    return out


def number(p) -> float:
    return p.as_int if p.WhichOneof("value") == "as_int" else p.as_double


def exponential_le_buckets(p, scale_bounds=None) -> list[tuple[float, int]]:
    """An OTel scale-0 exponential data point as cumulative Prometheus `le` buckets, bucket by
    bucket: the zero bucket is le=0; index i covers (2^i, 2^(i+1)], so its `le` is 2^(i+1)."""
    assert p.scale == 0 and not p.negative.bucket_counts
    out, running = [(0.0, p.zero_count)], p.zero_count
    for j, c in enumerate(p.positive.bucket_counts):
        running += c
        out.append((2.0 ** (p.positive.offset + j + 1), running))
    return out


def explicit_le_buckets(p) -> list[tuple[float, int]]:
    out, running = [], 0
    bounds = list(p.explicit_bounds) + [float("inf")]
    for b, c in zip(bounds, p.bucket_counts):
        running += c
        out.append((b, running))
    return out


def log_records(request) -> list[dict]:
    out = []
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for r in sl.log_records:
                out.append({"scope": sl.scope.name, "scope_version": sl.scope.version,
                            "resource": attrs(rl.resource.attributes), "body": any_value(r.body),
                            "attributes": attrs(r.attributes), "event_name": r.event_name,
                            "time": r.time_unix_nano, "severity": r.severity_number})
    return out
