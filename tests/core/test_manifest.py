"""core.manifest: a valid manifest parses to the expected data, and every kind of mistake is
reported as a Problem carrying the file, the field path and a message that says what to do."""
from __future__ import annotations

import pytest
import tomli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toml_strategies import KEYS, VALUES, mutated, toml_document

from core.manifest import (BucketSpec, EventSpec, KnobSpec, LabelSpec, Manifest, MetricSpec, load, parse)
from core.problems import Problem

PATH = "programs/demo/manifest.toml"

HEADER = '''
name = "demo"
version = "1.0.0"
description = "test program"
license = "GPL-2.0"
'''

COUNTER = '''
[[metrics]]
name = "demo_total"
type = "counter"
help = "Demo events"
map = "counts"
'''

FULL = '''
name = "demo"
version = "1.2.3-rc.1"
description = "Everything a manifest can say"
license = "GPL-2.0"

[requires]
program_types = ["tracepoint", "tracing"]

[knobs.by_process]
default = false
description = "also count by process"

[knobs.target_pid]
default = 0

[[metrics]]
name = "demo_syscalls_total"
type = "counter"
help = "System calls"
map = "counts"
per_cpu = "cpu"
labels.key = { name = "syscall", decoder = "syscall" }

[[metrics]]
name = "demo_bytes_total"
type = "counter"
help = "Bytes"
map = "stats"
value = "bytes"
labels.op = { decoder = "static", values = { "0" = "read", "1" = "write" } }
labels.pid = { drop = true }

[[metrics]]
name = "demo_latency_seconds"
type = "histogram"
help = "Latency"
map = "hists"
buckets = { scheme = "log2", field = "slots" }
sum = "sum"
scale = 1e-6

[[metrics]]
name = "demo_queue_depth"
type = "histogram"
help = "Queue depth"
map = "depths"
buckets = { scheme = "linear", field = "slots", min = 1, width = 10 }

[[metrics]]
name = "demo_retransmits_total"
type = "counter"
help = "Retransmits"
global = "retransmits"
scale = 2

[[events]]
map = "events"
drops = "dropped"

[[events]]
map = "more_events"
'''


def parse_ok(text: str) -> Manifest:
    m, problems = parse(text, PATH)
    assert problems == [], [str(p) for p in problems]
    assert m is not None
    return m


def parse_bad(text: str) -> list[Problem]:
    m, problems = parse(text, PATH)
    assert m is None
    assert problems
    assert all(p.file == PATH for p in problems)
    return problems


# ---------------------------------------------------------------- valid manifests

def test_full_manifest_parses_to_expected_data():
    m = parse_ok(FULL)
    assert m == Manifest(
        path=PATH, name="demo", version="1.2.3-rc.1",
        description="Everything a manifest can say", license="GPL-2.0",
        program_types=("tracepoint", "tracing"),
        knobs={"by_process": KnobSpec("by_process", False, "also count by process"),
               "target_pid": KnobSpec("target_pid", 0, "")},
        metrics=(
            MetricSpec("metrics[0]", "demo_syscalls_total", "counter", "System calls", map="counts",
                       per_cpu="cpu",
                       labels={"key": LabelSpec("key", "syscall", "syscall",
                                                {"name": "syscall", "decoder": "syscall"})}),
            MetricSpec("metrics[1]", "demo_bytes_total", "counter", "Bytes", map="stats", value="bytes",
                       labels={"op": LabelSpec("op", "op", "static",
                                               {"decoder": "static",
                                                "values": {"0": "read", "1": "write"}}),
                               "pid": LabelSpec("pid", "pid", None, {"drop": True}, drop=True)}),
            MetricSpec("metrics[2]", "demo_latency_seconds", "histogram", "Latency", map="hists",
                       scale=1e-6, buckets=BucketSpec("log2", "slots"), sum="sum"),
            MetricSpec("metrics[3]", "demo_queue_depth", "histogram", "Queue depth", map="depths",
                       buckets=BucketSpec("linear", "slots", 1, 10)),
            MetricSpec("metrics[4]", "demo_retransmits_total", "counter", "Retransmits",
                       global_="retransmits", scale=2.0),
        ),
        events=(EventSpec("events[0]", "events", "dropped"), EventSpec("events[1]", "more_events")),
    )


def test_minimal_manifest_has_defaults():
    m = parse_ok(HEADER + COUNTER)
    assert m.program_types == () and m.knobs == {} and m.events == ()
    (spec,) = m.metrics
    assert spec.scale == 1.0 and isinstance(spec.scale, float)
    assert spec.per_cpu == "sum"
    assert spec.labels == {} and spec.buckets is None and spec.sum is None and spec.value is None
    assert spec.global_ is None and spec.map == "counts"


def test_manifest_without_metrics_is_valid():
    assert parse_ok(HEADER).metrics == ()


@pytest.mark.parametrize("version", ["0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-rc.1",
                                     "1.0.0-0.3.7", "1.0.0-x-y.z"])
def test_semantic_versions_accepted(version):
    assert parse_ok(HEADER.replace('"1.0.0"', f'"{version}"')).version == version


def test_scale_integer_becomes_float():
    m = parse_ok(HEADER + COUNTER + "scale = 1000\n")
    assert m.metrics[0].scale == 1000.0 and isinstance(m.metrics[0].scale, float)


def test_gauge_needs_no_total_suffix():
    m = parse_ok(HEADER + COUNTER.replace('"demo_total"', '"demo_depth"').replace('"counter"', '"gauge"'))
    assert m.metrics[0].type == "gauge"


def test_label_rename_to_a_dropped_labels_name_is_fine():
    # Only labels that stay count for duplicate names.
    m = parse_ok(HEADER + COUNTER + 'labels.a = { drop = true }\nlabels.b = { name = "a" }\n')
    assert m.metrics[0].labels["b"].name == "a"


def test_load_reads_the_file(tmp_path):
    p = tmp_path / "manifest.toml"
    p.write_text(HEADER + COUNTER)
    m, problems = load(str(p))
    assert problems == [] and m.path == str(p) and m.name == "demo"


def test_load_missing_file_is_a_problem(tmp_path):
    p = str(tmp_path / "nope.toml")
    m, problems = load(p)
    assert m is None
    assert [(q.file, q.field) for q in problems] == [(p, "")]
    assert "cannot read" in problems[0].message


def test_load_bad_utf8_is_a_problem(tmp_path):
    p = tmp_path / "manifest.toml"
    p.write_bytes(b'name = "\xff"\n')
    m, problems = load(str(p))
    assert m is None and "cannot read" in problems[0].message


# ---------------------------------------------------------------- one mistake at a time

def _without(text: str, line_start: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith(line_start))


METRIC_HEAD = HEADER + '[[metrics]]\n'

# (id, manifest text, field, words the message must contain)
MISTAKES = [
    # top level: required fields
    ("missing name", _without(HEADER, "name ") + COUNTER, "name", ["required field is missing"]),
    ("missing version", _without(HEADER, "version") + COUNTER, "version", ["required field is missing"]),
    ("missing description", _without(HEADER, "description") + COUNTER, "description",
     ["required field is missing"]),
    ("missing license", _without(HEADER, "license") + COUNTER, "license", ["required field is missing"]),
    # top level: wrong types and values
    ("name not a string", HEADER.replace('"demo"', "5"), "name", ["expected a string", "int 5"]),
    ("name bad characters", HEADER.replace('"demo"', '"Demo-1"'), "name", ["'Demo-1'", "must match"]),
    ("version not a string", HEADER.replace('"1.0.0"', "1"), "version", ["expected a string"]),
    ("version two parts", HEADER.replace('"1.0.0"', '"1.0"'), "version", ["'1.0'", "not a semantic version"]),
    ("version v prefix", HEADER.replace('"1.0.0"', '"v1.0.0"'), "version", ["not a semantic version"]),
    ("version leading zero", HEADER.replace('"1.0.0"', '"01.0.0"'), "version", ["not a semantic version"]),
    ("version build metadata junk", HEADER.replace('"1.0.0"', '"1.0.0-"'), "version",
     ["not a semantic version"]),
    ("description not a string", HEADER.replace('"test program"', "[1]"), "description",
     ["expected a string", "list"]),
    ("unknown top-level field", HEADER + 'nmae = "x"\n', "nmae",
     ["unknown field", "expected one of", "name", "metrics"]),
    ("requires not a table", HEADER + 'requires = "tracepoint"\n', "requires", ["expected a table"]),
    ("unknown requires field", HEADER + '[requires]\nprogram_type = ["kprobe"]\n', "requires.program_type",
     ["unknown field", "program_types"]),
    ("program_types not a list", HEADER + '[requires]\nprogram_types = "kprobe"\n',
     "requires.program_types", ["expected an array"]),
    ("program_types element not a string", HEADER + '[requires]\nprogram_types = ["kprobe", 3]\n',
     "requires.program_types[1]", ["expected a string", "3"]),
    # knobs
    ("knobs not a table", HEADER + "knobs = 1\n", "knobs", ["expected a table"]),
    ("knob not a table", HEADER + "[knobs]\ntarget_pid = 5\n", "knobs.target_pid",
     ["expected a table", "default"]),
    ("knob without default", HEADER + '[knobs.target_pid]\ndescription = "x"\n', "knobs.target_pid.default",
     ["required field is missing"]),
    ("knob default float", HEADER + "[knobs.ratio]\ndefault = 0.5\n", "knobs.ratio.default",
     ["expected an integer or a boolean", "float 0.5"]),
    ("knob default string", HEADER + '[knobs.on]\ndefault = "yes"\n', "knobs.on.default",
     ["expected an integer or a boolean"]),
    ("knob unknown field", HEADER + "[knobs.on]\ndefault = true\nhelp = 'x'\n", "knobs.on.help",
     ["unknown field", "default, description"]),
    ("knob description not a string", HEADER + "[knobs.on]\ndefault = true\ndescription = 1\n",
     "knobs.on.description", ["expected a string"]),
    # metrics: shape
    ("metrics not an array", HEADER + 'metrics = "x"\n', "metrics", ["expected an array"]),
    ("metric not a table", HEADER + "metrics = [1]\n", "metrics[0]", ["expected a table"]),
    ("unknown metric field", HEADER + COUNTER + 'lables = {}\n', "metrics[0].lables",
     ["unknown field", "labels"]),
    # metrics: required fields
    ("metric missing name", _without(HEADER + COUNTER, "name = \"demo_total\""), "metrics[0].name",
     ["required field is missing"]),
    ("metric missing type", _without(HEADER + COUNTER, "type"), "metrics[0].type",
     ["required field is missing"]),
    ("metric missing help", _without(HEADER + COUNTER, "help"), "metrics[0].help",
     ["required field is missing"]),
    # metrics: values
    ("metric name not a string", HEADER + COUNTER.replace('"demo_total"', "7"), "metrics[0].name",
     ["expected a string"]),
    ("metric name invalid", HEADER + COUNTER.replace('"demo_total"', '"demo-x_total"'), "metrics[0].name",
     ["'demo-x_total'", "not a valid Prometheus metric name"]),
    ("counter without _total", HEADER + COUNTER.replace('"demo_total"', '"demo_count"'), "metrics[0].name",
     ["counter", "must end in _total"]),
    ("bpfleet_ prefix", HEADER + COUNTER.replace('"demo_total"', '"bpfleet_demo_total"'),
     "metrics[0].name", ["bpfleet_ prefix is reserved"]),
    ("unknown metric type", HEADER + COUNTER.replace('"counter"', '"summary"'), "metrics[0].type",
     ["'summary'", "counter, gauge, histogram"]),
    ("help not a string", HEADER + COUNTER.replace('"Demo events"', "1"), "metrics[0].help",
     ["expected a string"]),
    ("both map and global", HEADER + COUNTER + 'global = "n"\n', "metrics[0]",
     ["exactly one of `map` or `global`"]),
    ("neither map nor global", _without(HEADER + COUNTER, "map"), "metrics[0]",
     ["exactly one of `map` or `global`"]),
    ("map not a string", HEADER + COUNTER.replace('"counts"', "1"), "metrics[0].map", ["expected a string"]),
    ("bad per_cpu", HEADER + COUNTER + 'per_cpu = "each"\n', "metrics[0].per_cpu",
     ["'each'", '"sum" or "cpu"']),
    ("scale a string", HEADER + COUNTER + 'scale = "1e-9"\n', "metrics[0].scale",
     ["expected an integer or a number", "str"]),
    ("scale a boolean", HEADER + COUNTER + "scale = true\n", "metrics[0].scale",
     ["expected an integer or a number", "bool True"]),
    ("value not a string", HEADER + COUNTER + "value = 1\n", "metrics[0].value", ["expected a string"]),
    # labels
    ("labels not a table", HEADER + COUNTER + 'labels = "pid"\n', "metrics[0].labels", ["expected a table"]),
    ("label spec not a table", HEADER + COUNTER + 'labels.dev = "disk"\n', "metrics[0].labels.dev",
     ["expected a table", "name", "decoder"]),
    ("unknown label field", HEADER + COUNTER + 'labels.dev = { decode = "disk" }\n',
     "metrics[0].labels.dev.decode", ["unknown field", "decoder, drop, name, values"]),
    ("label name invalid", HEADER + COUNTER + 'labels.dev = { name = "9disk" }\n',
     "metrics[0].labels.dev.name", ["'9disk'", "not a valid label name"]),
    ("label name with dash", HEADER + COUNTER + 'labels.dev = { name = "the-disk" }\n',
     "metrics[0].labels.dev.name", ["not a valid label name"]),
    ("label decoder not a string", HEADER + COUNTER + "labels.dev = { decoder = 1 }\n",
     "metrics[0].labels.dev.decoder", ["expected a string"]),
    ("label drop not a boolean", HEADER + COUNTER + 'labels.dev = { drop = "yes" }\n',
     "metrics[0].labels.dev.drop", ["expected a boolean"]),
    ("labels on a global", _without(HEADER + COUNTER, "map") + 'global = "n"\nlabels.dev = {}\n',
     "metrics[0].labels", ["global variable has no key, so no labels"]),
    ("duplicate label names after rename",
     HEADER + COUNTER + 'labels.pid = { name = "task" }\nlabels.tgid = { name = "task" }\n',
     "metrics[0].labels", ["name 'task' appears twice"]),
    ("rename onto another spec'd label's name",
     HEADER + COUNTER + 'labels.pid = {}\nlabels.tgid = { name = "pid" }\n',
     "metrics[0].labels", ["name 'pid' appears twice"]),
    # histograms
    ("histogram without buckets", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"'), "metrics[0].buckets", ["histogram needs buckets", "log2"]),
    ("buckets on a counter", HEADER + COUNTER + 'buckets = { scheme = "log2" }\n', "metrics[0].buckets",
     ["only histograms have buckets"]),
    ("buckets not a table", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = "log2"\n', "metrics[0].buckets",
     ["expected a table"]),
    ("bad bucket scheme", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = { scheme = "exp", field = "slots" }\n',
     "metrics[0].buckets.scheme", ["'exp'", "log2, linear"]),
    ("bucket scheme missing", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = { field = "slots" }\n',
     "metrics[0].buckets.scheme", ["required field is missing"]),
    ("unknown bucket field", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = { scheme = "log2", base = 2 }\n',
     "metrics[0].buckets.base", ["unknown field", "field, min, scheme, width"]),
    ("linear width zero", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = { scheme = "linear", field = "slots", width = 0 }\n',
     "metrics[0].buckets.width", ["must be a positive integer"]),
    ("linear width negative", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = { scheme = "linear", width = -5 }\n',
     "metrics[0].buckets.width", ["must be a positive integer"]),
    ("bucket field not a string", HEADER + COUNTER.replace('"counter"', '"histogram"')
     .replace('"demo_total"', '"demo_seconds"') + 'buckets = { scheme = "log2", field = 3 }\n',
     "metrics[0].buckets.field", ["expected a string"]),
    # duplicates across metrics
    ("duplicate metric names", HEADER + COUNTER + COUNTER.replace('"counts"', '"other"'), "metrics",
     ["name 'demo_total' appears twice"]),
    # events
    ("events not an array", HEADER + 'events = "ring"\n', "events", ["expected an array"]),
    ("event not a table", HEADER + 'events = ["ring"]\n', "events[0]", ["expected a table"]),
    ("event without map", HEADER + '[[events]]\ndrops = "dropped"\n', "events[0].map",
     ["required field is missing"]),
    ("unknown event field", HEADER + '[[events]]\nmap = "ring"\nsize = 4096\n', "events[0].size",
     ["unknown field", "drops, map"]),
    ("event drops not a string", HEADER + '[[events]]\nmap = "ring"\ndrops = 1\n', "events[0].drops",
     ["expected a string"]),
    # the file itself
    ("invalid TOML", HEADER + "[[metrics]\n", "", ["not valid TOML"]),
    ("duplicate TOML key", HEADER + 'name = "again"\n', "", ["not valid TOML"]),
]


@pytest.mark.parametrize("text, field, words", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_reported_with_file_and_field(text, field, words):
    problems = parse_bad(text)
    at_field = [p for p in problems if p.field == field]
    assert at_field, f"no problem at {field!r}: {[str(p) for p in problems]}"
    assert any(all(w in p.message for w in words) for p in at_field), [str(p) for p in at_field]


# A mistyped field is also treated as absent, which adds one follow-up problem.
FOLLOW_UPS = {"map not a string": 1, "buckets not a table": 1}


@pytest.mark.parametrize("case", [m[0] for m in MISTAKES])
def test_each_mistake_is_reported_once(case):
    # A single mistake gives a single problem (plus a known follow-up): no noise hiding the real one.
    text = next(m[1] for m in MISTAKES if m[0] == case)
    problems = parse_bad(text)
    assert len(problems) == 1 + FOLLOW_UPS.get(case, 0), [str(p) for p in problems]


def test_problem_str_names_file_and_field():
    (p,) = parse_bad(HEADER + COUNTER.replace('"demo_total"', '"demo_count"'))
    assert str(p) == f"{PATH}: metrics[0].name: a counter's name must end in _total"


def test_invalid_toml_message_carries_the_position():
    (p,) = parse_bad(HEADER + "[[metrics]\n")
    assert p.field == "" and "line" in p.message
    assert str(p).startswith(f"{PATH}: not valid TOML")


def test_the_index_in_the_field_path_is_the_failing_metric():
    text = HEADER + COUNTER + COUNTER.replace('"demo_total"', '"second_total"') + \
        COUNTER.replace('"demo_total"', '"third"')
    problems = parse_bad(text)
    assert [(p.field, p.message) for p in problems] == [
        ("metrics[2].name", "a counter's name must end in _total")]


# ---------------------------------------------------------------- many mistakes at once

def test_several_mistakes_are_all_reported():
    text = '''
name = "Demo"
version = "1.0"
license = "GPL-2.0"
colour = "blue"

[requires]
program_types = ["tracepoint", 1]

[knobs.pid]
default = 1.5

[[metrics]]
name = "bpfleet_thing"
type = "counter"
help = "x"
map = "a"
global = "b"

[[metrics]]
name = "lat_seconds"
type = "histogram"
help = "y"
map = "h"
per_cpu = "all"

[[metrics]]
name = "ok_total"
type = "counter"
help = "z"
map = "c"
labels.a = { name = "x" }
labels.b = { name = "x" }

[[metrics]]
name = "g"
type = "gauge"
help = "g"
global = "g"
labels.k = {}

[[events]]
drops = "d"
'''
    problems = parse_bad(text)
    fields = {p.field for p in problems}
    assert fields >= {
        "name", "version", "description", "colour", "requires.program_types[1]", "knobs.pid.default",
        "metrics[0].name", "metrics[0]", "metrics[1].buckets", "metrics[1].per_cpu", "metrics[2].labels",
        "metrics[3].labels", "events[0].map",
    }, sorted(fields)
    # metrics[0] has two problems with its name: reserved prefix and no _total suffix
    assert len([p for p in problems if p.field == "metrics[0].name"]) == 2


def test_mistakes_in_a_valid_looking_metric_do_not_stop_other_metrics():
    text = HEADER + COUNTER.replace('"demo_total"', '"a"') + COUNTER.replace('"demo_total"', '"b"')
    problems = parse_bad(text)
    assert [p.field for p in problems] == ["metrics[0].name", "metrics[1].name"]


@pytest.mark.parametrize("extra, field", [
    pytest.param("", "metrics[0].help", id="help"),
    pytest.param('scale = "1e-9"\n', "metrics[0].scale", id="scale"),
    pytest.param("value = 3\n", "metrics[0].value", id="value"),
    pytest.param("sum = 3\n", "metrics[0].sum", id="sum"),
])
def test_late_fields_are_reported_alongside_other_mistakes(extra, field):
    text = HEADER + _without(COUNTER, "help").replace('"demo_total"', '"demo_count"') + extra
    problems = parse_bad(text)
    fields = {p.field for p in problems}
    assert "metrics[0].name" in fields
    assert field in fields, sorted(fields)


# ---------------------------------------------------------------- properties (hypothesis)

@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_parses_or_is_reported(text):
    m, problems = parse(text, PATH)
    assert (m is None) == bool(problems)
    assert all(p.file == PATH and p.message for p in problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated(tomli.loads(FULL)))
def test_any_edit_of_a_valid_manifest_parses_or_is_reported_with_its_field(doc):
    """Values of any TOML type anywhere, fields removed, unknown fields added: parse() returns
    a manifest or problems naming the file, never raises. A required top-level field that is
    gone is named."""
    text = toml_document(doc)
    assert tomli.loads(text).keys() == doc.keys()   # the writer wrote what was drawn
    m, problems = parse(text, PATH)
    assert (m is None) == bool(problems)
    assert all(p.file == PATH and p.message for p in problems), problems
    for required in ("name", "version", "description", "license"):
        if required not in doc:
            assert required in {p.field for p in problems}


@settings(max_examples=100, deadline=None)
@given(doc=st.dictionaries(KEYS, VALUES, max_size=6))
def test_any_document_parses_or_is_reported(doc):
    m, problems = parse(toml_document(doc), PATH)
    assert (m is None) == bool(problems)
    assert all(p.file == PATH and p.message for p in problems)
