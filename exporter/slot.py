"""One configured program as exporter/supervisor.py keeps it (`Slot`: private to the
supervisor), and what everyone else may see of it (`ProgramView`: a frozen copy)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from exporter.config import ProgramConfig
from exporter.load.program import LoadedProgram


@dataclass(frozen=True)
class ProgramView:
    """One configured program at one moment, as Supervisor.view() / views() return it."""
    name: str
    wanted: ProgramConfig               # what was last asked for (the config, the API, the breaker)
    running: LoadedProgram | None       # what is loaded and attached, if anything
    config: ProgramConfig | None        # the config file's [programs.<name>] (per-host overrides)
    tripped: str | None = None          # why the circuit breaker detached it
    kernel_stats: dict = field(default_factory=dict)   # BPF program -> KernelStats, when asked


@dataclass
class Slot:
    """One configured program: what is running (if anything) and what went wrong last."""
    name: str
    wanted: ProgramConfig
    running: LoadedProgram | None = None
    error: str | None = None
    verifier_log: str = ""
    load_errors: int = 0
    read_errors: int = 0
    last_change: float = field(default_factory=time.time)
    last_swap_seconds: float | None = None
    tripped: str | None = None      # why the circuit breaker detached it (exporter/breaker.py)
    variants: tuple = ()            # the last load's variant verdicts (core/variants.py)
    not_applicable: str | None = None   # why it cannot run on this host (bcc without headers)

    def view(self, config: ProgramConfig | None, kernel_stats: dict | None = None) -> ProgramView:
        return ProgramView(self.name, self.wanted, self.running, config, self.tripped,
                           kernel_stats or {})

    def status(self) -> dict:
        p = self.running
        return {
            "name": self.name,
            "wanted_version": self.wanted.version,
            "version": p.artifact.version if p else None,
            "digest": p.artifact.digest if p else None,
            "state": "attached" if p and p.obj.attached else "tripped" if self.tripped
                     else "failed" if self.error
                     else "not_applicable" if self.not_applicable else "stopped",
            "not_applicable": self.not_applicable,
            "tripped": self.tripped,
            "error": self.error,
            "verifier_log": self.verifier_log or None,
            "load_errors": self.load_errors,
            "knobs": p.knobs if p else self.wanted.knobs,
            "last_change": self.last_change,
            "last_swap_seconds": self.last_swap_seconds,
            "variant": p.variant if p else None,
            "variant_forced": self.wanted.variant,
            "variants": [v.as_dict() for v in self.variants],
        }
