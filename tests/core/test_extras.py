"""core/extras.py: a feature whose optional dependencies are missing says which extra to
install. Hiding a module (None in sys.modules) is what a venv without it looks like to import."""
from __future__ import annotations

import importlib
import sys

import pytest

from core import extras


def hide(monkeypatch, top: str, *fresh: str) -> None:
    """Make `top` and every submodule unimportable; drop `fresh` (the modules under test) from
    sys.modules so that importing them runs their imports again."""
    for name in [top, *(n for n in list(sys.modules) if n.startswith(top + "."))]:
        monkeypatch.setitem(sys.modules, name, None)
    for name in fresh:
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_require_names_the_extra_and_the_missing_module(monkeypatch):
    hide(monkeypatch, "cryptography")
    with pytest.raises(extras.MissingExtra) as e:
        extras.require("signing", "Artifact signatures", "json", "cryptography")
    assert str(e.value) == ("Artifact signatures needs bpfleet[signing]: "
                            "pip install 'bpfleet[signing]' (no module 'cryptography')")
    assert e.value.extra == "signing" and e.value.name == "cryptography"
    assert isinstance(e.value, ImportError)      # `except ImportError` fallbacks still catch it


def test_require_passes_when_everything_is_there():
    extras.require("signing", "Artifact signatures", "json", "cryptography")


def test_signing_without_cryptography_asks_for_the_signing_extra(monkeypatch):
    hide(monkeypatch, "cryptography", "core.signing")
    with pytest.raises(extras.MissingExtra, match=r"needs bpfleet\[signing\]: pip install 'bpfleet\[signing\]'"):
        importlib.import_module("core.signing")
