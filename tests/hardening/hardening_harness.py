"""Starting exporters for the hardening tests (used by conftest.py and test modules that need
module-scoped exporters)."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness import Exporter


class Exporters:
    """Start exporters on the hardening registry; every one is stopped and checked clean
    (exit 0, no pins, every BPF object freed) at the end of the test."""

    def __init__(self, tmp: Path, registry: Path):
        self.tmp, self.registry, self.started = tmp, registry, []

    def __call__(self, programs: dict, start: bool = True, **kw) -> Exporter:
        e = Exporter(self.tmp / f"exporter{len(self.started)}", kw.pop("registry", self.registry),
                     programs, **kw)
        self.started.append(e)
        return e.start() if start else e

    def stop_all(self) -> None:
        errors = []
        for e in self.started:
            try:
                e.stop()
            except AssertionError as err:
                errors.append(str(err))
                e.kill()
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)
