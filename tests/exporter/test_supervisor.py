"""The Supervisor's interface (exporter/supervisor.py) with a fake loader: a real registry on
disk (digests checked, manifests parsed), no kernel. What it loads, upgrades, keeps on failure,
trips, hands to hooks, and what it reads back. The real loads: tests/integration, tests/hardening."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core import registry as reg
from exporter.config import Config, ProgramConfig
from core.series import Family
from exporter.load import loader
from exporter.load.errors import LoadError, NotApplicableOnHost
from exporter.snapshot import ProgramSnapshot
from exporter.supervisor import Supervisor

MANIFEST = """name = "{name}"
version = "{version}"
description = "a test program"
license = "GPL-2.0"
[requires]
program_types = ["tracepoint"]
[[metrics]]
name = "{metric}"
type = "counter"
help = "what it counts"
map = "counts"
"""


def publish(registry: Path, tmp: Path, name: str, version: str, metric: str | None = None) -> reg.Artifact:
    staged = tmp / f"{name}-{version}"
    staged.mkdir()
    (staged / "manifest.toml").write_text(MANIFEST.format(name=name, version=version,
                                                          metric=metric or f"{name}_total"))
    (staged / f"{name}.bpf.o").write_bytes(f"{name} {version}".encode())
    artifact, _new = reg.publish(registry, name, version, staged, str(staged / "manifest.toml"))
    return artifact


@dataclass
class FakeObj:
    attached: bool = True
    maps_: dict = field(default_factory=lambda: {"counts": "info of counts"})

    def maps(self):
        return self.maps_

    def map_fd(self, name):
        return 42


@dataclass
class FakeSpec:
    name: str


@dataclass
class FakeMetricPlan:
    spec: FakeSpec


@dataclass
class FakePlan:
    manifest: object
    metrics: tuple


@dataclass
class FakeProgram:
    """What the Supervisor uses of a LoadedProgram."""
    artifact: reg.Artifact
    plan: FakePlan
    knobs: dict
    previous: object = None
    obj: FakeObj = field(default_factory=FakeObj)
    variant: str | None = None
    variants: tuple = ()
    event_sink: object = None
    closed: bool = False
    max_series: object = "unset"

    @property
    def name(self):
        return self.artifact.name

    def close(self):
        self.closed = True

    def read(self):
        return ProgramSnapshot(self, {})

    def program_stats(self):
        return {}

    def consume_events(self, limit):
        return False

    def limit_series(self, override):
        self.max_series = override

    def metric_family(self, metric):
        if metric not in {mp.spec.name for mp in self.plan.metrics}:
            raise LookupError(metric)
        return Family(metric, "counter", "", [("", "", 7)])


class FakeLoader:
    def __init__(self):
        self.calls, self.fail, self.not_here = [], None, None

    def __call__(self, r, knobs, pin_root, where, previous, variant, btf_path, attach):
        self.calls.append((r.artifact.ref, r.manifest.name, previous))
        if self.not_here:
            raise NotApplicableOnHost(where, self.not_here)
        if self.fail:
            raise LoadError(where, self.fail, "verifier says no")
        metrics = tuple(FakeMetricPlan(FakeSpec(s.name)) for s in r.manifest.metrics)
        return FakeProgram(r.artifact, FakePlan(r.manifest, metrics), dict(knobs), previous), []


@pytest.fixture
def registry(tmp_path):
    registry = tmp_path / "registry"
    for name, version, metric in (("alpha", "1.0.0", None), ("alpha", "1.1.0", None),
                                  ("beta", "1.0.0", None), ("twin", "1.0.0", "alpha_total")):
        publish(registry, tmp_path, name, version, metric)
    return registry


@pytest.fixture
def sup(registry):
    load, changes, hooked = FakeLoader(), [], []
    s = Supervisor(str(registry), "/nonexistent/pins", "exporter.toml", load=load,
                   before_load=[lambda a: hooked.append((a.ref, len(load.calls)))],
                   on_change=lambda: changes.append(1))
    s.fake_load, s.changes, s.hooked = load, changes, hooked
    return s


def test_deploy_loads_through_the_loader_reading_the_manifest_once(sup, monkeypatch):
    reads = []
    real = loader.manifest_mod.load
    monkeypatch.setattr(loader.manifest_mod, "load", lambda p: reads.append(p) or real(p))
    assert sup.deploy(ProgramConfig("alpha", "1.0.0", {"k": 1})) is None
    assert len(reads) == 1 and reads[0].endswith("alpha/1.0.0/manifest.toml")
    assert sup.fake_load.calls == [("alpha@1.0.0", "alpha", None)]
    view = sup.view("alpha")
    assert view.running.artifact.ref == "alpha@1.0.0" and view.running.knobs == {"k": 1}
    assert view.wanted == ProgramConfig("alpha", "1.0.0", {"k": 1}) and view.config is None
    (st,) = sup.status()
    assert (st["state"], st["version"], st["error"]) == ("attached", "1.0.0", None)
    assert sup.changes


def test_before_load_hooks_see_the_artifact_before_the_loader_does(sup):
    sup.deploy(ProgramConfig("alpha", "latest"))
    assert sup.hooked == [("alpha@1.1.0", 0)]


def test_upgrade_hands_the_old_program_to_the_loader_then_closes_it(sup):
    sup.deploy(ProgramConfig("alpha", "1.0.0"))
    old = sup.view("alpha").running
    assert sup.deploy(ProgramConfig("alpha", "1.1.0")) is None
    new = sup.view("alpha").running
    assert new.previous is old and old.closed and not new.closed
    assert sup.status()[0]["version"] == "1.1.0"


def test_failed_upgrade_keeps_the_old_version_and_says_so(sup):
    sup.deploy(ProgramConfig("alpha", "1.0.0"))
    old = sup.view("alpha").running
    sup.fake_load.fail = "kernel refused to load"
    error = sup.deploy(ProgramConfig("alpha", "1.1.0"))
    assert error == "upgrade to 1.1.0 failed, still running 1.0.0: exporter.toml: programs.alpha: kernel refused to load"
    assert sup.view("alpha").running is old and not old.closed
    (st,) = sup.status()
    assert (st["state"], st["load_errors"], st["verifier_log"]) == ("attached", 1, "verifier says no")


def test_refusals_before_the_loader(sup, registry):
    digest = reg.resolve(registry, "alpha", "1.0.0").digest
    assert "digest mismatch" in sup.deploy(ProgramConfig("alpha", "1.1.0"), digest)
    assert "not in the registry" in sup.deploy(ProgramConfig("gamma"))
    sup.deploy(ProgramConfig("alpha"))
    assert "metric alpha_total is already exported by alpha@1.1.0" in sup.deploy(ProgramConfig("twin"))
    assert [c[0] for c in sup.fake_load.calls] == ["alpha@1.1.0"]


def test_not_applicable_is_a_state_not_an_error(sup):
    sup.fake_load.not_here = "no kernel headers"
    assert sup.deploy(ProgramConfig("beta")) is None
    (st,) = sup.status()
    assert (st["state"], st["not_applicable"], st["error"]) == ("not_applicable", "no kernel headers", None)


def test_trip_and_deploy_act_only_on_the_expected_program(sup):
    sup.deploy(ProgramConfig("alpha", "1.0.0"))
    measured = sup.view("alpha").running
    sup.deploy(ProgramConfig("alpha", "1.1.0"))     # someone else, in between
    assert sup.trip("alpha", "over budget", expect=measured) is False
    assert "changed meanwhile" in sup.deploy(ProgramConfig("alpha", "1.0.0"), expect=measured)
    current = sup.view("alpha").running
    assert sup.trip("alpha", "over budget", expect=current) is True and current.closed
    view = sup.view("alpha")
    assert view.running is None and view.tripped == "over budget"
    assert sup.status()[0]["state"] == "tripped"
    assert sup.deploy(ProgramConfig("alpha"), expect=None) is None
    assert sup.view("alpha").tripped is None


def test_reading_and_editing_a_running_program(sup):
    with pytest.raises(LookupError):
        sup.read_metric("alpha", "alpha_total")
    sup.deploy(ProgramConfig("alpha"))
    assert sup.read_metric("alpha", "alpha_total").samples == [("", "", 7)]
    with pytest.raises(LookupError):
        sup.read_metric("alpha", "nope_total")
    assert sup.edit_map("alpha", "counts", lambda fd, info: (fd, info)) == (42, "info of counts")
    with pytest.raises(LookupError):
        sup.edit_map("alpha", "nope", lambda fd, info: None)
    assert [ps.name for ps in sup.snapshot().programs] == ["alpha"]


def test_event_sink_reaches_running_and_later_programs(sup):
    sup.deploy(ProgramConfig("alpha"))
    sup.set_event_sink(sink := object())
    sup.deploy(ProgramConfig("beta"))
    assert all(v.running.event_sink is sink for v in sup.views().values())
    sup.set_event_sink(None)
    assert all(v.running.event_sink is None for v in sup.views().values())


def test_apply_makes_the_running_set_match_the_config(sup):
    sup.deploy(ProgramConfig("beta"))
    cfg = Config("exporter.toml", programs={"alpha": ProgramConfig("alpha", "1.0.0", max_series=50)})
    assert sup.apply(cfg) == {"beta": None, "alpha": None}
    assert list(sup.views()) == ["alpha"]
    prog = sup.view("alpha").running
    assert prog.max_series == 50 and sup.view("alpha").config.max_series == 50
    assert sup.apply(cfg) == {"alpha": None} and sup.view("alpha").running is prog, "nothing new: kept"
    sup.close()
    assert sup.views() == {} and prog.closed
    assert sup.unload("alpha") is False
