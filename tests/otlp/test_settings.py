"""The [otlp] config table, the OTEL_* environment, and which wins (exporter/otlp/settings.py);
the push backoff (exporter/otlp/transport.py backoff_delay)."""
from __future__ import annotations

import pytest

from core.problems import ProblemsError
from exporter.config import OtlpConfig, parse
from exporter.otlp.settings import default_resource_attributes, resolve

PATH = "/etc/bpfleet/config.toml"


def otlp_of(text: str) -> OtlpConfig | None:
    return parse(text, PATH).otlp


def problems(text: str) -> list[tuple[str, str, str]]:
    with pytest.raises(ProblemsError) as e:
        parse(text, PATH)
    return [(p.file, p.field, p.message) for p in e.value.problems]


# ---------------------------------------------------------------- the [otlp] table

def test_full_table():
    c = otlp_of('''
[otlp]
enabled = true
endpoint = "https://collector:4317"
protocol = "grpc"
headers = { Authorization = "Bearer x" }
interval_seconds = 15
timeout_seconds = 2.5
temporality = "delta"
events = false
events_per_second = 50
resource = { "deployment.environment.name" = "prod", "host.rack" = 7 }
''')
    assert c == OtlpConfig(True, "https://collector:4317", "grpc", {"Authorization": "Bearer x"}, 15.0, 2.5,
                           "delta", False, 50.0, {"deployment.environment.name": "prod", "host.rack": 7})


def test_no_table_is_none_and_empty_table_sets_nothing():
    assert otlp_of("") is None
    assert otlp_of("[otlp]\n") == OtlpConfig()


@pytest.mark.parametrize("text, field, words", [
    ("otlp = 3", "otlp", "expected a table"),
    ("[otlp]\nendpont = 'x'", "otlp.endpont", "unknown field"),
    ("[otlp]\nenabled = 'yes'", "otlp.enabled", "true or false"),
    ("[otlp]\nendpoint = 'collector:4317'", "otlp.endpoint", "with a scheme"),
    ("[otlp]\nprotocol = 'http/json'", "otlp.protocol", "'grpc', 'http/protobuf'"),
    ("[otlp]\ntemporality = 'Delta'", "otlp.temporality", "not one of"),
    ("[otlp]\ninterval_seconds = 0", "otlp.interval_seconds", "positive number"),
    ("[otlp]\ntimeout_seconds = -1", "otlp.timeout_seconds", "positive number"),
    ("[otlp]\ninterval_seconds = true", "otlp.interval_seconds", "positive number"),
    ("[otlp]\nevents_per_second = -1", "otlp.events_per_second", "0 turns events off"),
    ("[otlp]\nheaders = { a = 1 }", "otlp.headers.a", "expected a string"),
    ("[otlp]\nresource = 'x'", "otlp.resource", "table"),
])
def test_mistakes_name_file_and_field(text, field, words):
    (p,) = problems(text)
    assert p[:2] == (PATH, field) and words in p[2], p


def test_all_mistakes_at_once():
    got = problems("[otlp]\nprotocol = 'x'\ntemporality = 'y'\n")
    assert [f for _p, f, _m in got] == ["otlp.protocol", "otlp.temporality"]


# ---------------------------------------------------------------- resolution and precedence

def test_disabled_without_table_or_endpoint():
    assert not resolve(None, {}).enabled
    assert not resolve(OtlpConfig(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}).enabled


def test_defaults_follow_the_specification():
    s = resolve(OtlpConfig(), {})
    assert s.enabled and s.interval == 60.0 and s.temporality == "cumulative"
    assert (s.metrics.protocol, s.metrics.endpoint, s.metrics.timeout) == \
        ("http/protobuf", "http://localhost:4318/v1/metrics", 10.0)
    assert s.logs.endpoint == "http://localhost:4318/v1/logs" and s.events_per_second == 100.0
    g = resolve(OtlpConfig(protocol="grpc"), {})
    assert g.metrics.endpoint == g.logs.endpoint == "http://localhost:4317"


def test_environment_alone_enables_and_configures():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
           "OTEL_EXPORTER_OTLP_HEADERS": "api-key=s%20ecret,X-Tenant=a",
           "OTEL_METRIC_EXPORT_INTERVAL": "5000", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
           "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "Delta",
           "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/custom/path",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,team=x%2Cy",
           "OTEL_SERVICE_NAME": "ebpf"}
    s = resolve(None, env)
    assert s.enabled and s.interval == 5.0 and s.temporality == "delta"
    assert s.metrics.endpoint == "http://collector:4318/v1/metrics"      # a base: path appended
    assert s.logs.endpoint == "http://logs:4318/custom/path"             # per signal: as given
    assert s.metrics.headers == {"api-key": "s ecret", "x-tenant": "a"} and s.metrics.timeout == 2.5
    assert s.resource == {"deployment.environment.name": "prod", "team": "x,y", "service.name": "ebpf"}
    assert s.sources["interval_seconds"] == "env OTEL_METRIC_EXPORT_INTERVAL"


def test_config_file_wins_over_environment():
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://env-metrics:4318/v1/metrics",
           "OTEL_METRIC_EXPORT_INTERVAL": "5000", "OTEL_EXPORTER_OTLP_HEADERS": "a=env,b=env",
           "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
           "OTEL_RESOURCE_ATTRIBUTES": "service.name=env,zone=z1", "OTEL_SDK_DISABLED": "true"}
    cfg = OtlpConfig(enabled=True, endpoint="http://file:4317", protocol="grpc", headers={"A": "file"},
                     interval_seconds=30.0, temporality="cumulative", resource={"service.name": "file"})
    s = resolve(cfg, env, where=PATH)
    assert s.enabled
    assert s.metrics.protocol == "grpc" and s.metrics.endpoint == s.logs.endpoint == "http://file:4317"
    assert s.interval == 30.0 and s.temporality == "cumulative"
    assert s.metrics.headers == {"a": "file", "b": "env"}                # merged per name, file first
    assert s.resource == {"service.name": "file", "zone": "z1"}
    assert s.sources["metrics.endpoint"] == f"{PATH}: otlp.endpoint"


def test_signal_specific_variables_beat_generic_ones():
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_TIMEOUT": "1000", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "3000",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}
    s = resolve(None, env)
    assert (s.metrics.protocol, s.logs.protocol) == ("http/protobuf", "grpc")
    assert (s.metrics.timeout, s.logs.timeout) == (3.0, 1.0)
    assert (s.metrics.endpoint, s.logs.endpoint) == ("http://c:4317/v1/metrics", "http://c:4317")


def test_exporter_none_and_sdk_disabled():
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    s = resolve(None, dict(base, OTEL_LOGS_EXPORTER="none"))
    assert s.metrics is not None and s.logs is None
    s = resolve(None, dict(base, OTEL_METRICS_EXPORTER="none"))
    assert s.metrics is None and s.logs is not None
    assert not resolve(OtlpConfig(), dict(base, OTEL_SDK_DISABLED="true")).enabled
    assert resolve(OtlpConfig(events=False), base).logs is None
    assert resolve(OtlpConfig(events_per_second=0.0), base).logs is None


@pytest.mark.parametrize("var, value", [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1"), ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
    ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "sometimes"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"), ("OTEL_METRICS_EXPORTER", "zipkin"),
])
def test_bad_environment_names_the_variable(var, value):
    with pytest.raises(ProblemsError) as e:
        resolve(OtlpConfig(), {var: value})
    assert [(p.file, p.field) for p in e.value.problems] == [("environment", var)]


def test_summary_hides_header_values():
    s = resolve(OtlpConfig(headers={"authorization": "Bearer secret"}), {})
    assert "secret" not in repr(s.summary()) and s.summary()["metrics"]["headers"] == ["authorization"]


def test_default_resource_uses_semantic_conventions():
    import os
    import socket
    r = default_resource_attributes("9.9.9")
    assert r["service.name"] == "bpfleet-exporter" and r["service.version"] == "9.9.9"
    assert r["host.name"] == socket.gethostname() and r["os.type"] == "linux"
    assert r["os.version"] == os.uname().release          # the kernel release, as the SDK's OS detector


# ---------------------------------------------------------------- backoff

def test_backoff_doubles_up_to_the_cap_with_jitter():
    from exporter.otlp.transport import backoff_delay
    mid = lambda: 0.5   # noqa: E731  (no jitter)
    assert [backoff_delay(1.0, n, mid) for n in range(6)] == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert [backoff_delay(60.0, n, mid) for n in (1, 2, 3, 50)] == [120.0, 240.0, 240.0, 240.0]
    assert backoff_delay(600.0, 3, mid) == 600.0         # never below the interval
    assert backoff_delay(100.0, 3, mid) == 300.0         # at most 5 minutes otherwise
    assert 3.6 <= backoff_delay(1.0, 5, lambda: 0.0) < backoff_delay(1.0, 5, lambda: 1.0) <= 4.4
