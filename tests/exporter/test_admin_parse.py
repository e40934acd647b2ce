"""exporter.admin.parse_deploy: the body of PUT /programs/<name>, valid and invalid."""
from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("body, message", [
    ([], "body: expected a JSON object"),
    ("1.0.0", "body: expected a JSON object"),
    (None, "body: expected a JSON object"),
    ({"verison": "1.0.0"}, "body: unknown field(s) verison"),
    ({"zeta": 1, "alpha": 2, "version": "1.0.0"}, "body: unknown field(s) alpha, zeta"),
    ({"version": "1.0"}, "body.version: '1.0' is not \"latest\" or MAJOR.MINOR.PATCH"),
    ({"version": "v1.0.0"}, "body.version: 'v1.0.0' is not \"latest\" or MAJOR.MINOR.PATCH"),
    ({"version": 1}, "body.version: 1 is not \"latest\" or MAJOR.MINOR.PATCH"),
    ({"version": None}, "body.version: None is not \"latest\" or MAJOR.MINOR.PATCH"),
    ({"version": "LATEST"}, "body.version: 'LATEST' is not \"latest\" or MAJOR.MINOR.PATCH"),
    ({"knobs": []}, "body.knobs: expected an object of knob name → integer or boolean"),
    ({"knobs": None}, "body.knobs: expected an object of knob name → integer or boolean"),
    ({"knobs": {"target_pid": "42"}}, "body.knobs: expected an object of knob name → integer or boolean"),
    ({"knobs": {"ratio": 0.5}}, "body.knobs: expected an object of knob name → integer or boolean"),
    ({"knobs": {"a": 1, "b": None}}, "body.knobs: expected an object of knob name → integer or boolean"),
    ({"digest": "abc"}, "body.digest: expected a sha256 hex digest"),
    ({"digest": DIGEST + "0"}, "body.digest: expected a sha256 hex digest"),
    ({"digest": 123}, "body.digest: expected a sha256 hex digest"),
    ({"digest": ""}, "body.digest: expected a sha256 hex digest"),
], ids=["list", "string", "null", "unknown field", "unknown fields sorted", "version two parts",
        "version v prefix", "version int", "version null", "version upper case", "knobs list",
        "knobs null", "knob string", "knob float", "knob null", "digest short", "digest long",
        "digest int", "digest empty"])
def test_invalid_bodies(body, message):
    with pytest.raises(ValueError) as e:
        parse_deploy("syscalls", body)
    assert str(e.value) == message


def test_unknown_fields_are_reported_before_other_mistakes():
    with pytest.raises(ValueError, match=r"^body: unknown field\(s\) extra$"):
        parse_deploy("syscalls", {"extra": 1, "version": "bad"})


def test_returned_knobs_are_the_bodys_values():
    knobs = {"target_pid": 7}
    pc = parse_deploy("syscalls", {"knobs": knobs})
    assert pc.knobs == {"target_pid": 7}


@pytest.mark.parametrize("digest", ["z" * 64, "sha256:" + "a" * 57, " " * 64],
                         ids=["not hex", "prefixed", "spaces"])
def test_non_hex_digest_is_rejected(digest):
    with pytest.raises(ValueError, match="body.digest"):
        parse_deploy("syscalls", {"digest": digest})
