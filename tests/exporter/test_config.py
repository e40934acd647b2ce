"""exporter.config: the built-in default, a valid file, and parse errors naming file and field."""
from __future__ import annotations

from pathlib import Path

import pytest
import tomli
from hypothesis import HealthCheck, given, settings
from toml_strategies import mutated, toml_document

from core.problems import ProblemsError
from exporter import config
from exporter.config import Config, ProgramConfig, parse, parse_listen

PATH = "/etc/bpfleet/config.toml"
REPO = Path(__file__).resolve().parent.parent.parent


def problems_of(text: str) -> list:
    with pytest.raises(ProblemsError) as e:
        parse(text, PATH)
    assert all(p.file == PATH for p in e.value.problems)
    return e.value.problems


# ---------------------------------------------------------------- defaults

def test_default_config_enables_the_builtin_programs():
    c = config.default_config()
    expected = sorted(p.parent.name for p in (REPO / "programs").glob("*/manifest.toml")
                      if "[mitigation]" not in p.read_text())
    assert expected and "syscalls" in expected
    # mitigations are enabled only by [mitigations.<name>] (docs/mitigations.md)
    assert "xdp_denylist" in config.builtin_program_names(mitigations=True)
    assert sorted(c.programs) == expected == config.builtin_program_names()
    assert all(pc == ProgramConfig(name) for name, pc in c.programs.items())
    assert all(pc.version == "latest" and pc.knobs == {} for pc in c.programs.values())
    assert c.source == "<built-in default>"
    assert (c.listen, c.registry, c.pin_root, c.admin_socket) == (
        config.DEFAULT_LISTEN, None, config.DEFAULT_PIN_ROOT, config.DEFAULT_ADMIN_SOCKET)


def test_builtin_program_names_skip_directories_without_manifest():
    # programs/include holds headers, not a program
    assert "include" not in config.builtin_program_names()


def test_load_none_is_the_default():
    assert config.load(None) == config.default_config()


def test_default_listen_is_loopback():
    assert parse_listen(config.DEFAULT_LISTEN, "x") == ("127.0.0.1", 9436)


# ---------------------------------------------------------------- valid files

FULL = '''
listen = "0.0.0.0:9500"
registry = "/var/lib/bpfleet/registry"
pin_root = "/sys/fs/bpf/fleet"
admin_socket = "/run/fleet/admin.sock"

[programs.syscalls]
version = "1.2.0"
knobs = { by_process = true, target_pid = 42 }

[programs.biolatency]

[programs.tcp]
version = "2.0.0-rc.1"
enabled = true

[programs.exec]
enabled = false
'''


def test_full_config():
    c = parse(FULL, PATH)
    assert c == Config(PATH, "0.0.0.0:9500", "/var/lib/bpfleet/registry", "/sys/fs/bpf/fleet",
                       "/run/fleet/admin.sock", {
                           "syscalls": ProgramConfig("syscalls", "1.2.0", {"by_process": True, "target_pid": 42}),
                           "biolatency": ProgramConfig("biolatency"),
                           "tcp": ProgramConfig("tcp", "2.0.0-rc.1"),
                       })


def test_empty_config_uses_defaults_and_runs_nothing():
    c = parse("", PATH)
    assert c == Config(PATH)
    assert c.programs == {} and c.listen == config.DEFAULT_LISTEN


def test_enabled_false_drops_the_program():
    c = parse('[programs.a]\nenabled = false\n[programs.b]\nversion = "1.0.0"\n', PATH)
    assert list(c.programs) == ["b"]


def test_enabled_false_still_reports_mistakes():
    (p,) = problems_of('[programs.a]\nenabled = false\nversion = "1.0"\n')
    assert p.field == "programs.a.version"


def test_load_reads_a_file(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('listen = ":9000"\n[programs.syscalls]\n')
    c = config.load(str(f))
    assert c.source == str(f) and c.listen == ":9000" and list(c.programs) == ["syscalls"]


def test_load_missing_file(tmp_path):
    f = str(tmp_path / "nope.toml")
    with pytest.raises(ProblemsError) as e:
        config.load(f)
    (p,) = e.value.problems
    assert (p.file, p.field) == (f, "") and "cannot read" in p.message


# ---------------------------------------------------------------- listen

@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:9436", ("127.0.0.1", 9436)),
    ("0.0.0.0:80", ("0.0.0.0", 80)),
    (":9436", ("127.0.0.1", 9436)),
    ("[::1]:9436", ("::1", 9436)),
    ("[::]:1", ("::", 1)),
    ("localhost:65535", ("localhost", 65535)),
])
def test_parse_listen(value, expected):
    assert parse_listen(value, PATH) == expected


@pytest.mark.parametrize("value", ["9436", "localhost", "host:", "host:0", "host:65536", "host:http",
                                   "host:-1", "host: 80", "[::1]", ""])
def test_parse_listen_rejects(value):
    with pytest.raises(ProblemsError) as e:
        parse_listen(value, PATH)
    (p,) = e.value.problems
    assert (p.file, p.field) == (PATH, "listen") and p.message == f"{value!r} is not HOST:PORT"


# ---------------------------------------------------------------- mistakes

MISTAKES = [
    # (id, text, field, words in the message)
    ("invalid TOML", "listen = \n", "", ["not valid TOML"]),
    ("unknown top-level field", 'lisen = ":1"\n', "lisen",
     ["unknown field", "admin_socket, breaker, btf, listen, mitigations, otlp, pin_root, programs, registry"]),
    ("bad listen", 'listen = "9436"\n', "listen", ["'9436' is not HOST:PORT"]),
    ("listen port too large", 'listen = "0.0.0.0:70000"\n', "listen", ["is not HOST:PORT"]),
    ("listen not a string", "listen = 9436\n", "listen", ["expected a string", "9436"]),
    ("registry not a string", "registry = ['/a']\n", "registry", ["expected a string"]),
    ("pin_root not a string", "pin_root = true\n", "pin_root", ["expected a string"]),
    ("admin_socket not a string", "admin_socket = 1\n", "admin_socket", ["expected a string"]),
    ("programs not a table", 'programs = ["syscalls"]\n', "programs", ["expected a table of [programs.<name>]"]),
    ("program not a table", "[programs]\nsyscalls = true\n", "programs.syscalls", ["expected a table"]),
    ("bad program name", '[programs."Sys-Calls"]\n', "programs.Sys-Calls", ["'Sys-Calls' is not a program name"]),
    ("unknown program field", '[programs.syscalls]\nverison = "1.0.0"\n', "programs.syscalls.verison",
     ["unknown field (expected one of: attach, budget, enabled, knobs, max_series, variant, version)"]),
    ("version two parts", '[programs.syscalls]\nversion = "1.0"\n', "programs.syscalls.version",
     ["'1.0' is not \"latest\" or MAJOR.MINOR.PATCH"]),
    ("version v prefix", '[programs.syscalls]\nversion = "v1.0.0"\n', "programs.syscalls.version",
     ["'v1.0.0'"]),
    ("version not a string", "[programs.syscalls]\nversion = 1\n", "programs.syscalls.version",
     ["1 is not \"latest\""]),
    ("version newest", '[programs.syscalls]\nversion = "newest"\n', "programs.syscalls.version",
     ["'newest'"]),
    ("enabled not a boolean", '[programs.syscalls]\nenabled = "no"\n', "programs.syscalls.enabled",
     ["expected true or false", "'no'"]),
    ("knobs not a table", "[programs.syscalls]\nknobs = 1\n", "programs.syscalls.knobs",
     ["expected a table of knob = value"]),
    ("knob float", "[programs.syscalls]\nknobs = { ratio = 0.5 }\n", "programs.syscalls.knobs.ratio",
     ["expected an integer or boolean", "0.5"]),
    ("knob string", '[programs.syscalls]\nknobs = { target_pid = "42" }\n', "programs.syscalls.knobs.target_pid",
     ["expected an integer or boolean", "'42'"]),
    ("knob array", "[programs.syscalls]\nknobs = { pids = [1, 2] }\n", "programs.syscalls.knobs.pids",
     ["expected an integer or boolean"]),
]


@pytest.mark.parametrize("text, field, words", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistakes_name_file_and_field(text, field, words):
    problems = problems_of(text)
    assert len(problems) == 1, [str(p) for p in problems]
    (p,) = problems
    assert p.field == field, str(p)
    assert all(w in p.message for w in words), p.message


def test_problem_text_names_the_file():
    (p,) = problems_of('listen = "nope"\n')
    assert str(p) == f"{PATH}: listen: 'nope' is not HOST:PORT"


def test_all_mistakes_are_reported_at_once():
    text = '''
listen = "nope"
colour = "blue"
registry = 1

[programs.syscalls]
version = "1.0"
knobs = { a = 1.5, b = "x" }
enabled = "yes"

[programs.Bad]

[programs.tcp]
version = "1.0.0"
'''
    problems = problems_of(text)
    assert sorted(p.field for p in problems) == sorted([
        "listen", "colour", "registry", "programs.syscalls.version", "programs.syscalls.knobs.a",
        "programs.syscalls.knobs.b", "programs.syscalls.enabled", "programs.Bad",
    ])


# ---------------------------------------------------------------- properties (hypothesis)

FUZZ_BASE = FULL + '''
[programs.runqlat]
max_series = { runqlat_seconds = 100 }
budget = { ns_per_event = 500 }

[otlp]
enabled = true
endpoint = "http://127.0.0.1:4318"
protocol = "http/protobuf"
headers = { "x-tenant" = "a" }
interval_seconds = 10
resource = { "service.name" = "bpfleet" }

[breaker]
enabled = true
interval_seconds = 5
windows = 3
min_events = 1000
reenable = "after"
cooldown_seconds = 600
'''


def test_fuzz_base_is_valid():
    assert parse(FUZZ_BASE, PATH).otlp.endpoint == "http://127.0.0.1:4318"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=mutated(tomli.loads(FUZZ_BASE)))
def test_any_edit_of_a_valid_config_parses_or_is_reported(doc):
    """Any TOML value anywhere, fields removed or added: a Config, or ProblemsError naming the
    file for every problem; nothing else is raised."""
    try:
        c = parse(toml_document(doc), PATH)
    except ProblemsError as e:
        assert e.problems and all(p.file == PATH and p.message for p in e.problems)
    else:
        assert isinstance(c, Config)


# ---------------------------------------------------------------- variants and external BTF

def test_variant_and_btf_parse():
    c = parse('[programs.tcp]\nvariant = "kprobe"\n[btf]\ndir = "/var/lib/bpfleet/btf"\n'
              'files = { "5.4.0-42-generic" = "/srv/btf/5.4.0-42-generic.btf" }\n', PATH)
    assert c.programs["tcp"].variant == "kprobe"
    assert c.btf.dir == "/var/lib/bpfleet/btf"
    assert c.btf.files == {"5.4.0-42-generic": "/srv/btf/5.4.0-42-generic.btf"}


@pytest.mark.parametrize("text, field, words", [
    ('[programs.tcp]\nvariant = 3\n', "programs.tcp.variant", "expected a variant name"),
    ('[programs.tcp]\nvariant = "Fentry!"\n', "programs.tcp.variant", "expected a variant name"),
    ('btf = "/x"\n', "btf", "expected a table"),
    ('[btf]\ndirs = "/x"\n', "btf.dirs", "unknown field"),
    ('[btf]\ndir = 1\n', "btf.dir", "expected a directory path"),
    ('[btf]\nfiles = ["/x"]\n', "btf.files", "expected a table"),
    ('[btf]\nfiles = { "6.1.0" = 5 }\n', "btf.files.6.1.0", "expected a BTF file path"),
])
def test_bad_variant_and_btf(text, field, words):
    problems = problems_of(text)
    assert any(p.field == field and words in p.message for p in problems), problems


def test_btf_resolution(tmp_path, monkeypatch):
    from exporter import btf_source
    from exporter.btf_source import BtfConfig
    monkeypatch.setenv(btf_source.KERNEL_BTF_ENV, str(tmp_path / "none"))
    with pytest.raises(ProblemsError) as e:
        btf_source.resolve(BtfConfig(), PATH, "5.4.0-42-generic")
    assert e.value.problems[0].field == "btf" and "has no BTF" in e.value.problems[0].message
    with pytest.raises(ProblemsError) as e:
        btf_source.resolve(BtfConfig(dir=str(tmp_path)), PATH, "5.4.0-42-generic")
    assert e.value.problems[0].field == "btf.dir" and "no such file" in e.value.problems[0].message
    monkeypatch.setenv(btf_source.KERNEL_BTF_ENV, "/sys/kernel/btf/vmlinux")
    assert btf_source.resolve(BtfConfig(dir=str(tmp_path)), PATH, "5.4.0-42-generic") is None
