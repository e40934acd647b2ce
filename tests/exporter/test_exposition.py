"""Text exposition 0.0.4: escaping units, round trips through prometheus_client's
parser (hypothesis) and through promtool, which uses Prometheus's own Go parser."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from promtool_batch import check_examples, needs_promtool, promtool_check

from core.series import EMPTY, Family, LabelSet
from exporter.exposition.text import CONTENT_TYPE, escape_help, format_value, le_label, render

INF = float("inf")


@pytest.mark.parametrize("text, escaped", [
    ("Bytes read.", "Bytes read."),
    ('quotes " stay', 'quotes " stay'),
    ("back\\slash\nnewline", "back\\\\slash\\nnewline"),
])
def test_escape_help(text, escaped):
    assert escape_help(text) == escaped


@pytest.mark.parametrize("value, text", [
    (0, "0"),
    (2**64 - 1, "18446744073709551615"),
    (-3, "-3"),
    (True, "1"),
    (1.0, "1.0"),
    (0.25, "0.25"),
    (1e-9, "1e-09"),
    (INF, "+Inf"),
    (-INF, "-Inf"),
    (float("nan"), "NaN"),
])
def test_format_value(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize("bound, text", [
    (0.001, "0.001"),
    (1, "1.0"),
    (2.5, "2.5"),
    (123456, "123456.0"),
    (1_000_000, "1e+06"),
    (1_234_567, "1.234567e+06"),
    (2**40, "1.099511627776e+12"),
    (-1_000_000, "-1e+06"),
    (INF, "+Inf"),
])
def test_le_label_matches_the_client_libraries(bound, text):
    assert le_label(bound) == text


def test_le_label_agrees_with_prometheus_client():
    from prometheus_client.utils import floatToGoString

    for exponent in range(-12, 40):
        for mantissa in (1, 1.5, 2, 5, 9.99):
            bound = mantissa * 10.0**exponent
            assert le_label(bound) == floatToGoString(bound)


def test_render_layout():
    families = [
        Family("syscalls_total", "counter", "Syscalls.\nBy name.", [
            ("", LabelSet.of([("name", "read")]), 7),
            ("", LabelSet.of([("name", 'we"ird\\')]), 2.5),
        ]),
        Family("empty", "gauge", "Nothing yet.", []),
        Family("latency_seconds", "histogram", "Latency.", [
            ("_bucket", LabelSet.of([("le", le_label(1))]), 1),
            ("_bucket", LabelSet.of([("le", le_label(INF))]), 3),
            ("_sum", EMPTY, 4.5),
            ("_count", EMPTY, 3),
        ]),
    ]
    assert render(families) == (
        b"# HELP syscalls_total Syscalls.\\nBy name.\n"
        b"# TYPE syscalls_total counter\n"
        b'syscalls_total{name="read"} 7\n'
        b'syscalls_total{name="we\\"ird\\\\"} 2.5\n'
        b"# HELP empty Nothing yet.\n"
        b"# TYPE empty gauge\n"
        b"# HELP latency_seconds Latency.\n"
        b"# TYPE latency_seconds histogram\n"
        b'latency_seconds_bucket{le="1.0"} 1\n'
        b'latency_seconds_bucket{le="+Inf"} 3\n'
        b"latency_seconds_sum 4.5\n"
        b"latency_seconds_count 3\n"
    )
    assert render([]) == b""
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_render_encodes_utf8_and_special_values():
    family = Family("temp", "gauge", "Ünïcode help €", [
        ("", LabelSet.of([("city", "Zürich")]), -INF),
        ("", LabelSet.of([("city", "東京")]), float("nan")),
        ("", EMPTY, INF),
        ("", LabelSet.of([("x", "b")]), True),
    ])
    assert render([family]).decode("utf-8").splitlines()[2:] == [
        'temp{city="Zürich"} -Inf', 'temp{city="東京"} NaN', "temp +Inf", 'temp{x="b"} 1',
    ]


def test_help_with_newlines_at_both_ends_round_trips():
    help_text = "\nleading and trailing newlines, a \\ and a \"\n"
    [parsed] = text_string_to_metric_families(render([Family("x", "gauge", help_text, [])]).decode())
    assert parsed.documentation == help_text


# ---- property: prometheus_client's parser reads back exactly what went in ----

metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
label_names = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(lambda n: n != "le")
label_values = st.text(max_size=20)
label_sets = st.dictionaries(label_names, label_values, max_size=4)
# The parser (like Prometheus's) drops blanks at either end of HELP: the format
# has no escape for them.
help_texts = st.text(max_size=40).map(str.strip)
sample_values = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)


@st.composite
def families_with_labels(draw):
    """A Family, and the label dict each of its samples was rendered from."""
    kind = draw(st.sampled_from(["counter", "gauge", "untyped", "histogram"]))
    name = draw(metric_names) + ("_total" if kind == "counter" else "")
    series = draw(st.lists(label_sets, max_size=4))
    samples, labels_of_samples = [], []

    def add(suffix, labels, value):
        samples.append((suffix, LabelSet.of(labels.items()), value))
        labels_of_samples.append(labels)

    if kind != "histogram":
        for labels in series:
            add("", labels, draw(sample_values))
    else:
        finite = st.floats(allow_nan=False, allow_infinity=False)
        bounds = [*sorted(set(draw(st.lists(finite, max_size=4)))), INF]
        for labels in series:
            counts = sorted(draw(st.lists(st.integers(0, 2**32), min_size=len(bounds), max_size=len(bounds))))
            for bound, count in zip(bounds, counts):
                add("_bucket", labels | {"le": le_label(bound)}, count)
            add("_sum", labels, draw(sample_values))
            add("_count", labels, counts[-1])
    return Family(name, kind, draw(help_texts), samples), labels_of_samples


unique_families = st.lists(families_with_labels(), max_size=5, unique_by=lambda pair: pair[0].name)


def same_value(parsed: float, expected: float | int) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(parsed)
    return parsed == expected


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=unique_families)
def test_round_trip_through_prometheus_client_parser(drawn):
    text = render([family for family, _ in drawn]).decode("utf-8")
    parsed_families = list(text_string_to_metric_families(text))
    assert len(parsed_families) == len(drawn)
    for (family, labels_of_samples), parsed in zip(drawn, parsed_families):
        # prometheus_client calls the 0.0.4 "untyped" by its OpenMetrics name.
        assert parsed.type == {"untyped": "unknown"}.get(family.type, family.type)
        assert parsed.documentation == family.help
        assert len(parsed.samples) == len(family.samples)
        for (suffix, _, value), labels, sample in zip(family.samples, labels_of_samples, parsed.samples):
            assert sample.name == family.name + suffix
            assert sample.labels == labels
            assert same_value(sample.value, value)


@settings(max_examples=300)
@given(name=metric_names, labels=label_sets, value=sample_values)
def test_label_values_round_trip_exactly(name, labels, value):
    family = Family(name, "gauge", "help", [("", LabelSet.of(labels.items()), value)])
    [parsed] = text_string_to_metric_families(render([family]).decode("utf-8"))
    [sample] = parsed.samples
    assert sample.labels == labels
    assert same_value(sample.value, value)


# ---- promtool: Prometheus's own parser and linter ----------------------------


@needs_promtool
def test_promtool_accepts_and_lints_clean():
    label = [("comm", 'we"ird \\ name\nwith newline'), ("city", "Zürich")]
    families = [
        Family("bpfleet_syscalls_total", "counter", "Syscalls entered, by name.\nSecond line \\ here.", [
            ("", LabelSet.of(label), 12),
            ("", LabelSet.of([("comm", "bash"), ("city", "")]), 2**64 - 1),
        ]),
        Family("bpfleet_open_files", "gauge", "Files open.", [
            ("", LabelSet.of([("cgroup", "/system.slice")]), -3.5),
            ("", LabelSet.of([("cgroup", "/")]), float("nan")),
            ("", LabelSet.of([("cgroup", "/a")]), INF),
        ]),
        Family("bpfleet_not_yet_seen_total", "counter", "No samples yet.", []),
        Family("bpfleet_read_latency_seconds", "histogram", "Read latency.", [
            *(("_bucket", LabelSet.of([("disk", "vda"), ("le", le_label(bound))]), count)
              for bound, count in [(1e-06, 0), (0.001, 4), (1, 9), (2_000_000, 10), (INF, 11)]),
            ("_sum", LabelSet.of([("disk", "vda")]), 3.25),
            ("_count", LabelSet.of([("disk", "vda")]), 11),
        ]),
        Family("bpfleet_temperature_celsius", "untyped", "Untyped sample.", [("", EMPTY, 21)]),
    ]
    result = promtool_check(render(families))
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@needs_promtool
def test_promtool_parses_arbitrary_families():
    """300 drawn examples (any label text incl. NUL, quotes, backslashes, newlines; NaN, ±Inf,
    u64 and float values; histograms), checked by one promtool call."""
    examples = []

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(drawn=unique_families)
    def draw(drawn):
        families = [family for family, _ in drawn]
        assert len(list(text_string_to_metric_families(render(families).decode()))) == len(families)
        examples.append(families)
    draw()
    assert len(examples) >= 100
    assert check_examples(examples) > 0
