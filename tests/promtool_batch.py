"""promtool (Prometheus's own Go parser and linter) over many generated expositions in one call:
hypothesis draws the examples, each is kept, and they are checked together, which costs one
promtool start instead of hundreds."""
from __future__ import annotations

import dataclasses
import shutil
import subprocess

import pytest

from core.series import Family
from exporter.exposition.text import render

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def promtool_check(exposition: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, "check", "metrics"], input=exposition,
                          capture_output=True, timeout=60)


def parses(result: subprocess.CompletedProcess) -> bool:
    """Arbitrary names break lint rules (exit 3), never the parser (exit 1)."""
    output = (result.stdout + result.stderr).decode()
    return result.returncode in (0, 3) and "parsing error" not in output


def check_examples(examples: list[list[Family]]) -> int:
    """Every example's families, renamed `e<i>_<name>` so that names stay unique, in one
    exposition checked by one promtool call. On a parse error, the first example that fails
    on its own is named. -> the number of samples checked."""
    renamed = [dataclasses.replace(f, name=f"e{i}_{f.name}") for i, fams in enumerate(examples) for f in fams]
    result = promtool_check(render(renamed))
    if not parses(result):
        for i, fams in enumerate(examples):
            alone = promtool_check(render(fams))
            assert parses(alone), f"example {i}:\n{render(fams).decode()}\n{(alone.stdout + alone.stderr).decode()}"
        raise AssertionError((result.stdout + result.stderr).decode()[-3000:])
    return sum(len(f.all_samples()) for f in renamed)
