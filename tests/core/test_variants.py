"""[[variants]] in manifests (core/manifest.py) and the pure chooser (core/variants.py)."""
from __future__ import annotations

import pytest

from core import manifest, variants as V

HEAD = 'name = "p"\nversion = "1.0.0"\ndescription = "d"\nlicense = "GPL-2.0"\n'
THREE = HEAD + '''
[[variants]]
name = "fentry"
programs = ["f_a", "f_b"]
[[variants]]
name = "kprobe"
object = "p_kprobe"
[[variants]]
name = "tracepoint"
programs = ["t_a"]
helpers = ["bpf_ktime_get_ns"]
'''


def parse(text):
    return manifest.parse(text, "m.toml")


def test_variants_parse_in_order():
    m, problems = parse(THREE)
    assert problems == []
    assert [v.name for v in m.variants] == ["fentry", "kprobe", "tracepoint"]
    assert m.variants[1].object == "p_kprobe" and m.variants[1].programs == ()
    assert m.variants[2].helpers == ("ktime_get_ns",)


@pytest.mark.parametrize("body, field, words", [
    ('[[variants]]\nname = "a"\nprograms = ["x"]\n', "variants", "one variant is no choice"),
    ('[[variants]]\nname = "a"\nprograms = ["x"]\n[[variants]]\nname = "a"\nprograms = ["y"]\n',
     "variants", "appears twice"),
    ('[[variants]]\nname = "Bad"\nprograms = ["x"]\n[[variants]]\nname = "b"\nprograms = ["y"]\n',
     "variants[0].name", "must match"),
    ('[[variants]]\nname = "a"\n[[variants]]\nname = "b"\nprograms = ["y"]\n',
     "variants[0].programs", "required"),
    ('[[variants]]\nname = "a"\nprograms = [1]\n[[variants]]\nname = "b"\nprograms = ["y"]\n',
     "variants[0].programs[0]", "C identifier"),
    ('[[variants]]\nname = "a"\nobject = "x.bpf.c"\n[[variants]]\nname = "b"\nprograms = ["y"]\n',
     "variants[0].object", "stem"),
    ('[[variants]]\nname = "a"\nprograms = ["x"]\nspeed = 1\n[[variants]]\nname = "b"\nprograms = ["y"]\n',
     "variants[0].speed", "unknown field"),
    ('variants = "fentry"\n', "variants", "expected an array"),
])
def test_bad_variants_name_file_and_field(body, field, words):
    m, problems = parse(HEAD + body)
    assert m is None
    assert any(p.file == "m.toml" and p.field == field and words in p.message for p in problems), problems


def test_requirements_from_sections():
    R = V.Requirement
    assert V.requirements_of_section("fentry/tcp_set_state", "tracing") == \
        [R("kernel_btf"), R("trampoline", "fentry", "tcp_set_state")]
    assert V.requirements_of_section("tp_btf/sched_switch", "tracing")[1] == R("btf_tracepoint", target="sched_switch")
    assert V.requirements_of_section("tracepoint/sock/inet_sock_set_state", "tracepoint") == \
        [R("prog_type", "tracepoint"), R("tracefs_event", target="sock/inet_sock_set_state")]
    assert R("ksym", target="vfs_read") in V.requirements_of_section("kprobe/vfs_read+4", "kprobe")
    assert R("kprobes") in V.requirements_of_section("kretprobe/vfs_read", "kprobe")
    assert V.requirements_of_section("xdp", "xdp") == [R("prog_type", "xdp")]


def test_programs_of_shares_unclaimed_programs():
    m, _ = parse(THREE)
    progs = ["f_a", "f_b", "t_a", "common"]
    assert V.programs_of(m.variants[0], m.variants, progs) == {"f_a", "f_b", "common"}
    assert V.programs_of(m.variants[2], m.variants, progs) == {"t_a", "common"}
    assert V.programs_of(m.variants[1], m.variants, ["k1", "k2"]) == {"k1", "k2"}   # own object: all


def test_requirements_of_a_variant_with_helpers():
    m, _ = parse(THREE)
    reqs = V.requirements(m.variants[2], m.variants,
                          [("f_a", "fentry/x", "tracing"), ("t_a", "tp/a/b", "tracepoint")])
    assert reqs == [V.Requirement("prog_type", "tracepoint"), V.Requirement("tracefs_event", target="a/b"),
                    V.Requirement("helper", "ktime_get_ns", "tracepoint")]


def test_choose_puts_the_forced_variant_first():
    m, _ = parse(THREE)
    assert [v.name for v in V.choose(m.variants, None)] == ["fentry", "kprobe", "tracepoint"]
    assert [v.name for v in V.choose(m.variants, "tracepoint")] == ["tracepoint", "fentry", "kprobe"]


def test_verdicts_report_every_variant_in_manifest_order():
    m, _ = parse(THREE)
    order = V.choose(m.variants, "kprobe")
    tried = [V.Verdict("kprobe", V.UNAVAILABLE, "kprobes are not available"),
             V.Verdict("fentry", V.RUNNING, "best")]
    out = V.verdicts_after(order, tried, "kprobe", "--variant")
    assert [(v.variant, v.state) for v in out] == [("fentry", "running"), ("kprobe", "unavailable"),
                                                  ("tracepoint", "not_tried")]
    assert out[1].reason == "forced by --variant, but kprobes are not available; fell back to fentry"
    assert out[2].reason == "fentry runs: it comes first in the manifest"


def test_unavailable_reason_joins_distinct_reasons():
    R, F = V.Requirement, V.Finding
    assert V.unavailable_reason([F(R("kprobes"), True)]) is None
    assert V.unavailable_reason([F(R("a"), False, "x"), F(R("b"), False, "x"), F(R("c"), False, "y")]) == "x; y"


def test_check_against_objects():
    m, _ = parse(THREE)
    problems = V.check(m, {None: ["f_a", "t_a"]})
    fields = {p.field: p.message for p in problems}
    assert "no BPF program 'f_b' in p.bpf.o" in fields["variants[0].programs[1]"]
    assert "no object p_kprobe.bpf.o" in fields["variants[1].object"]
    assert V.check(m, {None: ["f_a", "f_b", "t_a"], "p_kprobe": ["k"]}) == []


def test_forced_problem():
    m, _ = parse(THREE)
    assert V.forced_problem(m, "kprobe", "c.toml", "programs.p.variant") is None
    p = V.forced_problem(m, "lsm", "c.toml", "programs.p.variant")
    assert p.field == "programs.p.variant" and "no variant 'lsm' (variants: fentry, kprobe, tracepoint)" in p.message
