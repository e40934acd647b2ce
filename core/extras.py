"""Optional dependencies: each outside library comes with one extra of the bpfleet package
(pyproject.toml), by where it runs. A module that needs one calls `require` before importing
it, so a missing extra is one line naming what to install, not a ModuleNotFoundError from
deep inside an import chain."""
from __future__ import annotations

import importlib


class MissingExtra(ImportError):
    """An ImportError, so `except ImportError` fallbacks keep working."""

    def __init__(self, feature: str, extra: str, module: str):
        super().__init__(f"{feature} needs bpfleet[{extra}]: pip install 'bpfleet[{extra}]' "
                         f"(no module {module!r})", name=module)
        self.extra = extra


def require(extra: str, feature: str, *modules: str) -> None:
    """Import each module (cached after the first time); MissingExtra if one isn't installed."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:     # also raised for a module set to None in sys.modules
            raise MissingExtra(feature, extra, e.name or module) from e
