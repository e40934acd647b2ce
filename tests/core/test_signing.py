"""Artifact signatures: sign, verify, refuse unsigned, tampered, or foreign-key artifacts."""
import json

import pytest

from core import registry as reg, signing
from core.problems import ProblemsError


@pytest.fixture
def keys(tmp_path):
    signing.generate(tmp_path / "k" / "release.key", tmp_path / "k" / "release.pub")
    signing.generate(tmp_path / "other" / "release.key", tmp_path / "other" / "release.pub")
    return tmp_path / "k", tmp_path / "other"


@pytest.fixture
def artifact(tmp_path):
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "demo.bpf.o").write_bytes(b"\x7fELF object bytes")
    (staged / "manifest.toml").write_text('name = "demo"\n')
    a, _ = reg.publish(tmp_path / "registry", "demo", "1.0.0", staged, "demo/manifest.toml")
    return a


def test_signed_artifact_resolves_with_its_key(keys, artifact):
    mine, _ = keys
    reg.sign(artifact, mine / "release.key")
    got = reg.resolve(artifact.dir.parent.parent, "demo", "1.0.0", [mine / "release.pub"])
    assert got.digest == artifact.digest


def test_private_key_file_is_private(keys):
    mine, _ = keys
    assert (mine / "release.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("case, message", [
    ("unsigned", "unsigned artifact"),
    ("other key", "does not match"),
    ("garbage signature", "not a hex signature"),
    ("tampered object", "does not match its digests"),
    ("tampered signature", "does not match"),
])
def test_refusals_say_why(keys, artifact, case, message):
    mine, other = keys
    registry = artifact.dir.parent.parent
    if case != "unsigned":
        reg.sign(artifact, (other if case == "other key" else mine) / "release.key")
    sig = artifact.dir / reg.SIGNATURE
    if case == "garbage signature":
        sig.write_text("not hex at all\n")
    if case == "tampered signature":
        raw = bytearray(bytes.fromhex(sig.read_text()))
        raw[0] ^= 1
        sig.write_text(raw.hex())
    if case == "tampered object":
        (artifact.dir / "demo.bpf.o").write_bytes(b"\x7fELF other bytes")
    with pytest.raises(ProblemsError, match=message) as e:
        reg.resolve(registry, "demo", "1.0.0", [mine / "release.pub"])
    assert str(artifact.dir) in str(e.value)


def test_signature_is_not_part_of_the_digest(keys, artifact):
    mine, _ = keys
    reg.sign(artifact, mine / "release.key")
    index = json.loads((artifact.dir / "index.json").read_text())
    assert reg.SIGNATURE not in index["files"]
    assert reg.resolve(artifact.dir.parent.parent, "demo", "1.0.0").digest == artifact.digest


def test_bad_key_files(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    with pytest.raises(signing.SignatureError, match="not a readable PEM"):
        signing.load_public(bad)
    with pytest.raises(signing.SignatureError, match="not a readable PEM"):
        signing.sign(tmp_path / reg.SIGNATURE, "00" * 32, bad)
