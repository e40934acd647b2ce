"""exporter.admin.parse_deploy: the body of PUT /programs/<name>, valid and invalid (every
problem names the request and the field; all of them are reported at once)."""
from __future__ import annotations

import pytest

from core.problems import ProblemsError
from exporter.admin import parse_deploy
from exporter.config import ProgramConfig

DIGEST = "ab" * 32


@pytest.mark.parametrize("body, expected", [
    ({}, ProgramConfig("syscalls", "latest", {})),
    ({"version": "latest"}, ProgramConfig("syscalls", "latest", {})),
    ({"version": "1.2.0"}, ProgramConfig("syscalls", "1.2.0", {})),
    ({"version": "1.2.0-rc.1"}, ProgramConfig("syscalls", "1.2.0-rc.1", {})),
    ({"knobs": {}}, ProgramConfig("syscalls", "latest", {})),
    ({"knobs": {"by_process": True, "target_pid": 42, "neg": -1}},
     ProgramConfig("syscalls", "latest", {"by_process": True, "target_pid": 42, "neg": -1})),
    ({"version": "2.0.0", "knobs": {"target_pid": 0}, "digest": DIGEST},
     ProgramConfig("syscalls", "2.0.0", {"target_pid": 0})),
    ({"digest": None}, ProgramConfig("syscalls", "latest", {})),
], ids=["empty", "latest", "version", "prerelease", "no knobs", "knobs", "everything", "null digest"])
def test_valid_bodies(body, expected):
    assert parse_deploy("syscalls", body) == expected


def test_name_comes_from_the_path():
    assert parse_deploy("tcp", {"version": "1.0.0"}).name == "tcp"


KNOB = "expected an integer or boolean, got "
VERSION = " is not \"latest\" or MAJOR.MINOR.PATCH"
UNKNOWN = "unknown field (expected one of: digest, knobs, version)"


@pytest.mark.parametrize("body, problems", [
    ([], [("body", "expected a JSON object")]),
    ("1.0.0", [("body", "expected a JSON object")]),
    (None, [("body", "expected a JSON object")]),
    ({"verison": "1.0.0"}, [("body.verison", UNKNOWN)]),
    ({"zeta": 1, "alpha": 2, "version": "1.0.0"}, [("body.zeta", UNKNOWN), ("body.alpha", UNKNOWN)]),
    ({"version": "1.0"}, [("body.version", "'1.0'" + VERSION)]),
    ({"version": "v1.0.0"}, [("body.version", "'v1.0.0'" + VERSION)]),
    ({"version": 1}, [("body.version", "1" + VERSION)]),
    ({"version": None}, [("body.version", "None" + VERSION)]),
    ({"version": "LATEST"}, [("body.version", "'LATEST'" + VERSION)]),
    ({"version": "1.0.0\n"}, [("body.version", "'1.0.0\\n'" + VERSION)]),
    ({"knobs": []}, [("body.knobs", "expected a table of knob = value, got []")]),
    ({"knobs": None}, [("body.knobs", "expected a table of knob = value, got None")]),
    ({"knobs": {"target_pid": "42"}}, [("body.knobs.target_pid", KNOB + "'42'")]),
    ({"knobs": {"ratio": 0.5}}, [("body.knobs.ratio", KNOB + "0.5")]),
    ({"knobs": {"a": 1, "b": None}}, [("body.knobs.b", KNOB + "None")]),
    ({"digest": "abc"}, [("body.digest", "expected a sha256 hex digest, got 'abc'")]),
    ({"digest": DIGEST + "0"}, [("body.digest", f"expected a sha256 hex digest, got '{DIGEST}0'")]),
    ({"digest": 123}, [("body.digest", "expected a sha256 hex digest, got 123")]),
    ({"digest": ""}, [("body.digest", "expected a sha256 hex digest, got ''")]),
], ids=["list", "string", "null", "unknown field", "unknown fields", "version two parts",
        "version v prefix", "version int", "version null", "version upper case", "version newline",
        "knobs list", "knobs null", "knob string", "knob float", "knob null", "digest short",
        "digest long", "digest int", "digest empty"])
def test_invalid_bodies(body, problems):
    with pytest.raises(ProblemsError) as e:
        parse_deploy("syscalls", body)
    assert [(p.field, p.message) for p in e.value.problems] == problems
    assert all(p.file == "PUT /programs/syscalls" for p in e.value.problems)


def test_every_mistake_is_reported_at_once():
    with pytest.raises(ProblemsError) as e:
        parse_deploy("Sys-Calls", {"extra": 1, "version": "bad", "knobs": {"a": 0.5}})
    assert [p.field for p in e.value.problems] == ["path", "body.extra", "body.version", "body.knobs.a"]


def test_returned_knobs_are_the_bodys_values():
    knobs = {"target_pid": 7}
    pc = parse_deploy("syscalls", {"knobs": knobs})
    assert pc.knobs == {"target_pid": 7}


@pytest.mark.parametrize("digest", ["z" * 64, "sha256:" + "a" * 57, " " * 64, "AB" * 32],
                         ids=["not hex", "prefixed", "spaces", "upper case"])
def test_non_hex_digest_is_rejected(digest):
    with pytest.raises(ProblemsError) as e:
        parse_deploy("syscalls", {"digest": digest})
    assert [p.field for p in e.value.problems] == ["body.digest"]
