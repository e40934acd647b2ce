"""The mitigation model as data: the [mitigation] table, list kinds, kernel-fixed rules, the
exporter config's [mitigations] tables. Pure; no root. <1 s."""
from __future__ import annotations

import struct

import pytest

from core import manifest
from core.listkinds import KINDS, encode_entries
from core.mitigation import fixed_by, parse_duration
from core.problems import ProblemsError
from exporter import config

BASE = '''
name = "m"
version = "1.0.0"
description = "d"
license = "GPL-2.0"

[[metrics]]
name = "m_decisions_total"
type = "counter"
help = "h"
map = "decisions"

[[events]]
map = "events"
'''

GOOD = BASE + '''
[mitigation]
answers = ["CVE-2026-31431"]
blocks = "AF_ALG sockets"
default_mode = "monitor"
mode_map = "mode"
decisions = "m_decisions_total"
ttl = "30d"
fixed_in = ["6.1.130", "6.6.80", "6.12"]
scope = ["web"]
lists.allow = { map = "allow_exe", kind = "exe_path", role = "allow" }
'''


def test_a_good_table_parses():
    m, problems = manifest.parse(GOOD, "m/manifest.toml")
    assert problems == []
    mit = m.mitigation
    assert mit.answers == ("CVE-2026-31431",) and mit.ttl_seconds == 30 * 86400
    assert mit.lists["allow"].kind == "exe_path" and mit.lists["allow"].role == "allow"
    assert mit.scope == ("web",) and mit.fixed_in == ("6.1.130", "6.6.80", "6.12")


@pytest.mark.parametrize("table, field, needle", [
    ('answers = []', "mitigation.answers", "at least one"),
    ('answers = ["has space"]', "mitigation.answers[0]", "CVE id"),
    ('default_mode = "block"', "mitigation.default_mode", "monitor, enforce"),
    ('decisions = "nope_total"', "mitigation.decisions", "no [[metrics]] entry"),
    ('ttl = "forever"', "mitigation.ttl", "duration"),
    ('ttl = 0', "mitigation.ttl", "duration"),
    ('fixed_in = ["6.1.x"]', "mitigation.fixed_in[0]", "kernel version"),
    ('lists.allow = { map = "a", kind = "mac", role = "allow" }', "mitigation.lists.allow.kind", "exe_path"),
    ('lists.allow = { map = "a", kind = "comm", role = "maybe" }', "mitigation.lists.allow.role", "allow"),
    ('lists.allow = { kind = "comm", role = "allow" }', "mitigation.lists.allow.map", "missing"),
    ('colour = "red"', "mitigation.colour", "unknown field"),
])
def test_bad_tables_name_file_and_field(table, field, needle):
    lines = [ln for ln in GOOD.split("[mitigation]")[1].strip().splitlines()
             if ln.split("=")[0].strip() != table.split("=")[0].strip()
             and not (table.startswith("lists.") and ln.startswith("lists."))]
    text = GOOD.split("[mitigation]")[0] + "[mitigation]\n" + "\n".join(lines + [table]) + "\n"
    m, problems = manifest.parse(text, "m/manifest.toml")
    assert m is None
    assert any(p.file == "m/manifest.toml" and p.field == field and needle in p.message for p in problems), problems


def test_missing_required_fields_are_all_reported():
    _, problems = manifest.parse(BASE.replace("[[events]]\nmap = \"events\"\n", "") + "[mitigation]\n", "f")
    fields = {p.field for p in problems}
    assert {"mitigation.answers", "mitigation.blocks", "mitigation.mode_map", "mitigation.decisions",
            "mitigation.ttl", "mitigation"} <= fields, problems


def test_list_kinds_encode_and_decode():
    cases = {
        "ipv4_prefix": ("192.0.2.0/24", 8, struct.pack("<I", 24) + bytes([192, 0, 2, 0])),
        "ipv6_prefix": ("2001:db8::/32", 20, struct.pack("<I", 32) + bytes.fromhex("20010db8") + bytes(12)),
        "device": ("c 1:3", 12, struct.pack("<III", 2, 1, 3)),
        "address_family": ("AF_ALG", 4, struct.pack("<I", 38)),
        "comm": ("cryptsetup", 16, b"cryptsetup".ljust(16, b"\0")),
        "cgroup_id": (12345, 8, struct.pack("<Q", 12345)),
    }
    for kind, (entry, size, key) in cases.items():
        assert KINDS[kind].encode(entry, size) == key, kind
        assert KINDS[kind].decode(key) == str(entry), kind
    assert KINDS["device"].decode(KINDS["device"].encode("b 8:*", 12)) == "b 8:*"


@pytest.mark.parametrize("kind, entry, needle", [
    ("ipv4_prefix", "10.0.0.1/8", "host bits"),
    ("ipv4_prefix", "2001:db8::/32", "IPv6"),
    ("ipv4_prefix", 7, "IPv4 prefix"),
    ("exe_path", "/" + "x" * 300, "at most 255"),
    ("device", "c 1", "device like"),
    ("device", "x 1:3", "device like"),
    ("address_family", "AF_NOPE", "address family"),
    ("address_family", 99, "address family"),
    ("cgroup_id", "/sys/fs/cgroup/no-such-cgroup-xyz", "No such file"),
])
def test_bad_entries_say_which_and_why(kind, entry, needle):
    keys, problems = encode_entries(KINDS[kind], [entry], 256 if kind == "exe_path" else 8)
    assert keys == [] and len(problems) == 1 and problems[0].startswith("[0]: ") and needle in problems[0], problems


@pytest.mark.parametrize("kernel, fixed", [
    ("6.1.129", None), ("6.1.130", "6.1.130"), ("6.1.200-amd64", "6.1.130"),
    ("6.6.79", None), ("6.6.80", "6.6.80"),
    ("6.12.0", "6.12"), ("6.13.1", "6.12"), ("6.18.44-fc-v669", "6.12"),
    ("6.2.5", None),      # a branch that never got the backport
    ("5.15.170", None),   # older than every fixed branch
    ("weird", None),
])
def test_fixed_by(kernel, fixed):
    assert fixed_by(kernel, ("6.1.130", "6.6.80", "6.12")) == fixed


def test_durations():
    bad = []
    assert [parse_duration(v, "w", lambda *a: bad.append(a)) for v in ("45s", "90m", "12h", "7d", "2w", 60)] == \
        [45, 5400, 43200, 604800, 1209600, 60]
    assert bad == []
    for v in ("", "1y", "-5s", True, 0, "0d"):
        assert parse_duration(v, "w", lambda *a: bad.append(a)) is None
    assert len(bad) == 6


def test_exporter_config_mitigations(tmp_path):
    good = config.parse('''
[mitigations.xdp_denylist]
version = "1.0.0"
mode = "enforce"
expires = 2030-01-01T00:00:00Z
lists = { deny_v4 = ["192.0.2.0/24"] }
attach = { interfaces = ["eth0"] }
''', "e.toml")
    mc = good.mitigations["xdp_denylist"]
    assert (mc.mode, mc.expires_at, mc.lists, mc.attach.interfaces) == (
        "enforce", 1893456000.0, {"deny_v4": ["192.0.2.0/24"]}, ("eth0",))
    assert good.programs == {}
    with pytest.raises(ProblemsError) as e:
        config.parse('''
[programs.xdp_denylist]
[mitigations.xdp_denylist]
mode = "on"
expires = 2030-01-01T00:00:00
ttl = "soon"
lists = ["x"]
attach = { interfaces = ["a/b"], cgroup = "relative" }
colour = 1
''', "e.toml")
    got = {p.field for p in e.value.problems}
    # every problem at once, "also in [programs]" (the table's own field) too
    assert got == {f"mitigations.xdp_denylist{f}" for f in (
        "", ".mode", ".expires", ".ttl", ".lists", ".attach.interfaces", ".attach.cgroup", ".colour")}, \
        e.value.problems
    assert all(p.file == "e.toml" for p in e.value.problems)
    with pytest.raises(ProblemsError) as e:
        config.parse("[programs.xdp_denylist]\n[mitigations.xdp_denylist]\n", "e.toml")
    assert [(p.field, "enable it in one place" in p.message) for p in e.value.problems] == [
        ("mitigations.xdp_denylist", True)]


def test_the_hosts_cli_needs_no_controller_dependencies():
    """Hosts run `bpfleet exporter` from a venv without ansible-runner; building the parser
    (which registers `bpfleet mitigate`) must not import it."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['ansible_runner'] = None\n"
            "import bpfleet.cli; bpfleet.cli.parser().parse_args(['exporter', '--check'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
