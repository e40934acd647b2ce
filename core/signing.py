"""Artifact signatures (ed25519): the only module that does cryptography.

A signature covers an artifact's digest (which covers every file of the artifact), so a host
that checks it knows the object and manifest are exactly what the release key signed.
The signature is a file of hex beside the artifact's files, outside the digest; where it lives
(`signature.ed25519`) is core/registry.py's business, so this module takes its path.
"""
from __future__ import annotations

from pathlib import Path

from core.extras import require

require("signing", "Artifact signatures", "cryptography")
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SignatureError(Exception):
    pass


def generate(private_path: Path, public_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    private_path.chmod(0o600)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))


def _load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise SignatureError(f"{path}: not a readable PEM private key: {e}")
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an ed25519 key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as e:
        raise SignatureError(f"{path}: not a readable PEM public key: {e}")
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: not an ed25519 public key")
    return key


def sign(sig_file: Path, digest: str, private_path: Path) -> Path:
    """Sign `digest` with the private key at `private_path`, writing the signature to `sig_file`."""
    sig = _load_private(private_path).sign(digest.encode())
    sig_file.write_text(sig.hex() + "\n")
    return sig_file


def verify(sig_file: Path, digest: str, public_keys: list[Path]) -> Path:
    """-> the key that signed `digest`; SignatureError says plainly why not."""
    artifact_dir = sig_file.parent
    if not sig_file.is_file():
        raise SignatureError(f"{artifact_dir}: unsigned artifact (no {sig_file.name}); refusing to load it")
    try:
        sig = bytes.fromhex(sig_file.read_text().strip())
    except ValueError:
        raise SignatureError(f"{sig_file}: not a hex signature; refusing to load it")
    for path in public_keys:
        try:
            load_public(path).verify(sig, digest.encode())
            return path
        except InvalidSignature:
            continue
    raise SignatureError(f"{artifact_dir}: signature does not match digest {digest[:12]} under any trusted key "
                         f"({', '.join(map(str, public_keys))}); tampered or signed by another key — refusing")
