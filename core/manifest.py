"""Parsing and validating program manifests (manifest.toml). Pure: text in, data and problems out.

Every problem carries the file and the field path (`metrics[1].labels.dev.decoder`), and
parsing goes on after a problem so that all of them are reported at once.
"""
from __future__ import annotations

try:
    import tomllib as tomli      # Python 3.11+; pyproject installs the tomli backport below
except ModuleNotFoundError:      # pragma: no cover
    import tomli

from core import mitigation as mitigation_mod
from core.fields import Reader
from core.names import IDENT_RE, METRIC_RE, NAME_RE, SEMVER_RE
# The data classes parsing fills in live in core/manifest_model.py; imported here by their old address.
from core.manifest_model import (BucketSpec, BudgetSpec, DegradeSpec, EventSpec,  # noqa: F401
                                 KnobSpec, LabelSpec, Manifest, MetricSpec)
from core.problems import Problem
# Kernel portability: attach variants and bcc-source programs, parsed in a module of their own.
from core.manifest_portability import BccAttach, BccSpec, VariantSpec, parse_bcc, parse_variants  # noqa: F401

METRIC_TYPES = ("counter", "gauge", "histogram")
BUCKET_SCHEMES = ("log2", "linear")


def parse(text: str, path: str) -> tuple[Manifest | None, list[Problem]]:
    problems: list[Problem] = []
    try:
        doc = tomli.loads(text)
    except tomli.TOMLDecodeError as e:
        return None, [Problem(path, "", f"not valid TOML: {e}")]
    r = Reader(path, problems)
    r.unknown(doc, {"name", "version", "description", "license", "requires", "knobs",
                    "metrics", "events", "budget", "variants", "bcc", "mitigation"}, "")
    name = r.get(doc, "name", "", str, required=True, default="")
    if name and not NAME_RE.match(name):
        r.bad("name", f"{name!r} must match {NAME_RE.pattern}")
    version = r.get(doc, "version", "", str, required=True, default="")
    if version and not SEMVER_RE.match(version):
        r.bad("version", f"{version!r} is not a semantic version (MAJOR.MINOR.PATCH)")
    description = r.get(doc, "description", "", str, required=True, default="")
    license_ = r.get(doc, "license", "", str, required=True, default="")
    requires = r.get(doc, "requires", "", dict, default={})
    r.unknown(requires, {"program_types"}, "requires")
    types = r.get(requires, "program_types", "requires", list, default=[])
    for i, t in enumerate(types):
        if not isinstance(t, str):
            r.bad(f"requires.program_types[{i}]", f"expected a string, got {t!r}")
    knobs = _parse_knobs(r, r.get(doc, "knobs", "", dict, default={}))
    metrics = tuple(m for i, t in enumerate(r.get(doc, "metrics", "", list, default=[]))
                    if (m := _parse_metric(r, t, f"metrics[{i}]")) is not None)
    _no_duplicates(r, [m.name for m in metrics], "metrics", "name")
    events = tuple(e for i, t in enumerate(r.get(doc, "events", "", list, default=[]))
                   if (e := _parse_event(r, t, f"events[{i}]")) is not None)
    budget = None
    if (b := r.get(doc, "budget", "", dict)) is not None:
        budget = parse_budget(r, b, "budget", knobs, complete=True)
    variants = parse_variants(r, r.get(doc, "variants", "", list, default=[]), name)
    bcc = None
    if (b := r.get(doc, "bcc", "", dict)) is not None:
        bcc = parse_bcc(r, b, doc)
    mitigation = None
    if (t := r.get(doc, "mitigation", "", dict)) is not None:
        mitigation = mitigation_mod.parse(r, t, "mitigation", {m.name: m.type for m in metrics},
                                          bool(events))
    if problems:
        return None, problems
    return Manifest(path, name, version, description, license_,
                    tuple(t for t in types if isinstance(t, str)), knobs, metrics, events, budget,
                    variants=variants, bcc=bcc, mitigation=mitigation), []


def _parse_knobs(r: Reader, table: dict) -> dict:
    knobs = {}
    for name, spec in table.items():
        where = f"knobs.{name}"
        if not isinstance(spec, dict):
            r.bad(where, "expected a table like { default = 0, description = \"...\" }")
            continue
        r.unknown(spec, {"default", "description"}, where)
        default = r.get(spec, "default", where, (int, bool), required=True, default=0)
        knobs[name] = KnobSpec(name, default, r.get(spec, "description", where, str, default=""))
    return knobs


def _parse_metric(r: Reader, t, where: str) -> MetricSpec | None:
    if not isinstance(t, dict):
        r.bad(where, "expected a table")
        return None
    before = len(r.problems)
    r.unknown(t, {"name", "type", "help", "map", "global", "value", "scale", "per_cpu",
                  "labels", "buckets", "sum", "max_series"}, where)
    name = r.get(t, "name", where, str, required=True, default="")
    if name and not METRIC_RE.match(name):
        r.bad(f"{where}.name", f"{name!r} is not a valid Prometheus metric name")
    if name.startswith("bpfleet_"):
        r.bad(f"{where}.name", "the bpfleet_ prefix is reserved for the exporter's own metrics")
    mtype = r.get(t, "type", where, str, required=True, default="")
    if mtype and mtype not in METRIC_TYPES:
        r.bad(f"{where}.type", f"{mtype!r} is not one of {', '.join(METRIC_TYPES)}")
    map_ = r.get(t, "map", where, str)
    global_ = r.get(t, "global", where, str)
    if (map_ is None) == (global_ is None):
        r.bad(where, "exactly one of `map` or `global` is needed")
    per_cpu = r.get(t, "per_cpu", where, str, default="sum")
    if per_cpu not in ("sum", "cpu"):
        r.bad(f"{where}.per_cpu", f"{per_cpu!r} is not \"sum\" or \"cpu\"")
    labels = _parse_labels(r, r.get(t, "labels", where, dict, default={}), f"{where}.labels")
    buckets = _parse_buckets(r, t, where, mtype)
    if mtype == "counter" and name and not name.endswith("_total"):
        r.bad(f"{where}.name", "a counter's name must end in _total")
    if global_ is not None and labels:
        r.bad(f"{where}.labels", "a global variable has no key, so no labels")
    if mtype == "histogram" and per_cpu == "cpu":
        r.bad(f"{where}.per_cpu", "histograms add the CPUs together; \"cpu\" is for counters and gauges")
    help_ = r.get(t, "help", where, str, required=True, default="")
    value = r.get(t, "value", where, str)
    scale = float(r.get(t, "scale", where, (int, float), default=1.0))
    total = r.get(t, "sum", where, str)
    max_series = r.get(t, "max_series", where, int)
    if max_series is not None and max_series < 1:
        r.bad(f"{where}.max_series", f"must be a positive integer, got {max_series}")
    if len(r.problems) > before:
        return None
    return MetricSpec(where, name, mtype, help_, map_, global_, value, scale, per_cpu,
                      labels, buckets, total, max_series)


def _parse_labels(r: Reader, table: dict, where: str) -> dict:
    labels = {}
    for fld, spec in table.items():
        w = f"{where}.{fld}"
        if not isinstance(spec, dict):
            r.bad(w, "expected a table like { name = \"...\", decoder = \"...\" }")
            continue
        r.unknown(spec, {"name", "decoder", "values", "drop"}, w)
        name = r.get(spec, "name", w, str, default=fld)
        if not IDENT_RE.match(name):
            r.bad(f"{w}.name", f"{name!r} is not a valid label name")
        labels[fld] = LabelSpec(fld, name, r.get(spec, "decoder", w, str), dict(spec),
                                bool(r.get(spec, "drop", w, bool, default=False)))
    _no_duplicates(r, [s.name for s in labels.values() if not s.drop], where, "name")
    return labels


def _parse_buckets(r: Reader, t: dict, where: str, mtype: str) -> BucketSpec | None:
    b = r.get(t, "buckets", where, dict)
    if mtype != "histogram":
        if b is not None:
            r.bad(f"{where}.buckets", "only histograms have buckets")
        return None
    if b is None:
        r.bad(f"{where}.buckets", "a histogram needs buckets = { scheme = \"log2\", field = \"slots\" }")
        return None
    w = f"{where}.buckets"
    r.unknown(b, {"scheme", "field", "min", "width"}, w)
    scheme = r.get(b, "scheme", w, str, required=True, default="log2")
    if scheme not in BUCKET_SCHEMES:
        r.bad(f"{w}.scheme", f"{scheme!r} is not one of {', '.join(BUCKET_SCHEMES)}")
    # Slots hold integers, so bounds are whole numbers: slot i's inclusive bound is min + (i+1)*width - 1.
    width = r.get(b, "width", w, int, default=1)
    if scheme == "linear" and width <= 0:
        r.bad(f"{w}.width", "must be a positive integer")
    return BucketSpec(scheme, r.get(b, "field", w, str), r.get(b, "min", w, int, default=0), width)


def _parse_event(r: Reader, t, where: str) -> EventSpec | None:
    if not isinstance(t, dict):
        r.bad(where, "expected a table")
        return None
    r.unknown(t, {"map", "drops", "type"}, where)
    map_ = r.get(t, "map", where, str, required=True)
    type_ = r.get(t, "type", where, str)
    if type_ is not None and not IDENT_RE.match(type_):
        r.bad(f"{where}.type", f"{type_!r} is not a struct name: give the name alone "
              "(exec_event for struct exec_event)")
        type_ = None
    return EventSpec(where, map_, r.get(t, "drops", where, str), type_) if map_ else None


def parse_budget(r: Reader, t: dict, where: str, knobs: dict | None,
                 complete: bool) -> BudgetSpec | None:
    """A budget table: the manifest's [budget] (`complete`: it must set a limit), or a config's
    programs.<name>.budget, whose fields override the manifest's one by one. `knobs`: the
    manifest's knobs, to check degrade.knob against (None: checked when the program loads)."""
    before = len(r.problems)
    r.unknown(t, {"ns_per_event", "cpu_share", "degrade"}, where)
    limits = {}
    for key in ("ns_per_event", "cpu_share"):
        v = r.get(t, key, where, (int, float))
        if v is not None and not 0 < v < float("inf"):
            r.bad(f"{where}.{key}", f"must be a positive number, got {v!r}")
        limits[key] = float(v) if v is not None else None
    if complete and not t.keys() & {"ns_per_event", "cpu_share"}:
        r.bad(where, "a budget needs ns_per_event or cpu_share, or both")
    degrade = None
    d = r.get(t, "degrade", where, dict)
    if d is not None:
        w = f"{where}.degrade"
        r.unknown(d, {"knob", "values"}, w)
        knob = r.get(d, "knob", w, str, required=True, default="")
        if knob and knobs is not None and knob not in knobs:
            r.bad(f"{w}.knob", f"no knob {knob!r} (knobs: {', '.join(sorted(knobs)) or 'none'})")
        values = r.get(d, "values", w, list, required=True, default=[])
        if "values" in d and not values:
            r.bad(f"{w}.values", "give at least one value to step to")
        for i, v in enumerate(values):
            if not isinstance(v, (int, bool)):
                r.bad(f"{w}.values[{i}]", f"expected an integer or boolean, got {v!r}")
        degrade = DegradeSpec(knob, tuple(int(v) for v in values if isinstance(v, (int, bool))))
    if len(r.problems) > before:
        return None
    return BudgetSpec(limits["ns_per_event"], limits["cpu_share"], degrade)


def _no_duplicates(r: Reader, names: list[str], where: str, what: str) -> None:
    seen = set()
    for n in names:
        if n in seen:
            r.bad(where, f"{what} {n!r} appears twice")
        seen.add(n)


def load(path: str) -> tuple[Manifest | None, list[Problem]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(path, "", f"cannot read: {e}")]
    return parse(text, path)
