"""The set of programs an exporter runs: load, unload, upgrade with rollback, and read them.

One lock serialises lifecycle changes and reads, so a scrape never sees a half-swapped program.
A program that fails stays in the table with its error, so /status and the metrics can say why.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import manifest as manifest_mod, registry as reg
from core.problems import Problem, ProblemsError
from exporter import btf_source
from exporter.btf_source import BtfConfig
from exporter.config import Config, ProgramConfig
from core.limits import DEFAULT_MAX_SERIES
from exporter.load.program import LoadedProgram
from exporter.load.co_re import LoadError, load_program
from exporter.load.bcc_source import NotApplicable
from exporter.snapshot import SlotState, Snapshot

log = logging.getLogger("bpfleet.exporter")
# Test-only fault hook (docs/orchestrator.md, tests/e2e): BPFLEET_FAULT_CRASH_ON_LOAD=name@version
# makes the exporter process die (exit 70) when it is asked to load exactly that artifact, so the
# rollout e2e tests can prove that a crashing version is stopped at the canary and rolled back.
FAULT_CRASH_ON_LOAD = "BPFLEET_FAULT_CRASH_ON_LOAD"


def _fault_crash_on_load(ref: str) -> None:
    if os.environ.get(FAULT_CRASH_ON_LOAD) == ref:
        log.critical("%s=%s: crashing on purpose (test fault hook)", FAULT_CRASH_ON_LOAD, ref)
        logging.shutdown()
        os._exit(70)


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


class Supervisor:
    def __init__(self, registry: str, pin_root: str, config_source: str, trusted_keys=()):
        self.registry, self.pin_root, self.config_source = Path(registry), pin_root, config_source
        self.trusted_keys = [Path(k) for k in trusted_keys]
        self.slots: dict[str, Slot] = {}
        # The config's [programs.<name>] tables: per-host overrides (max_series, budget) hold
        # whoever deploys, the config or the admin API.
        self.program_configs: dict[str, ProgramConfig] = {}
        self.btf = BtfConfig()          # the config's [btf] (exporter/btf_source.py)
        self.lock = threading.RLock()
        self.on_change = lambda: None   # called after every load, upgrade and unload

    # ---- lifecycle ----
    def apply(self, config: Config) -> dict[str, str | None]:
        """Make the running set match `config`. -> name → error (None when fine)."""
        with self.lock:
            self.config_source = config.source
            self.trusted_keys = [Path(k) for k in config.trusted_keys]
            self.program_configs = dict(config.programs)
            self.btf = config.btf
            results = {}
            # Mitigations have their own slots, applied by exporter/mitigations/manager.py.
            for name in [n for n in self.slots if n not in config.programs and n not in config.mitigations]:
                self.unload(name)
                results[name] = None
            for name, pc in config.programs.items():
                slot = self.slots.get(name)
                if slot and slot.running and _same(slot, pc, self.registry):
                    slot.wanted, slot.error, slot.verifier_log = pc, None, ""
                    try:
                        self._check_overrides(slot.running.artifact)
                        self._apply_limits(slot.running)
                    except ProblemsError as e:
                        slot.error = str(e)
                        log.error("%s", e)
                    results[name] = slot.error
                    continue
                results[name] = self.deploy(pc)
            return results

    def deploy(self, pc: ProgramConfig, digest: str | None = None) -> str | None:
        """Load `pc`, or upgrade to it if a version runs already. -> error text or None."""
        with self.lock:
            slot = self.slots.setdefault(pc.name, Slot(pc.name, pc))
            slot.wanted = pc
            old = slot.running
            t0 = time.perf_counter()
            try:
                artifact = reg.resolve(self.registry, pc.name, pc.version, self.trusted_keys)
                if digest and artifact.digest != digest:
                    raise LoadError(str(artifact.dir), f"digest mismatch: the registry has "
                                    f"{artifact.digest}, the caller asked for {digest}; refusing")
                _fault_crash_on_load(artifact.ref)
                self._check_metric_names(artifact)
                self._check_overrides(artifact)
                btf_path = btf_source.resolve(self.btf, self.config_source)
                new, reused = load_program(artifact, pc.knobs, self.pin_root,
                                           f"{self.config_source}: programs.{pc.name}", old,
                                           pc.variant, btf_path, pc.attach)
            except NotApplicable as e:
                slot.not_applicable, slot.error, slot.last_change = e.message, None, time.time()
                self.on_change()
                log.info("program %s is not applicable on this host: %s", pc.name, e.message)
                return None
            except (LoadError, ProblemsError) as e:
                return self._failed(slot, e, old)
            # The new version is attached and the old one detached (exporter/handover.py).
            if old is not None:
                old.close()
            slot.last_swap_seconds = time.perf_counter() - t0 if old else None
            slot.running, slot.error, slot.verifier_log = new, None, ""
            slot.tripped, slot.variants, slot.not_applicable = None, new.variants, None
            self._apply_limits(new)
            slot.last_change = time.time()
            self.on_change()
            verb = f"upgraded {old.artifact.ref} →" if old else "loaded"
            log.info("%s %s (sha256:%s)%s", verb, new.artifact.ref, new.artifact.digest[:12],
                     f", kept maps {', '.join(reused)}" if reused else "")
            return None

    def _check_metric_names(self, artifact: reg.Artifact) -> None:
        """Two programs exporting one metric name would make the exposition invalid."""
        m, problems = manifest_mod.load(str(artifact.manifest_path))
        if problems:
            raise ProblemsError(problems)
        mine = {spec.name for spec in m.metrics}
        for other in self.running():
            if other.name != artifact.name:
                both = mine & {mp.spec.name for mp in other.plan.metrics}
                if both:
                    raise LoadError(f"{m.path}: metrics", f"metric {', '.join(sorted(both))} "
                                    f"is already exported by {other.artifact.ref}")

    def _check_overrides(self, artifact: reg.Artifact) -> None:
        """The config's max_series and budget overrides must name what the program has."""
        pc = self.program_configs.get(artifact.name)
        if pc is None or (not isinstance(pc.max_series, dict) and not pc.budget):
            return
        m, problems = manifest_mod.load(str(artifact.manifest_path))
        if problems:
            raise ProblemsError(problems)
        where = f"programs.{artifact.name}"
        names = [spec.name for spec in m.metrics]
        for metric in pc.max_series if isinstance(pc.max_series, dict) else ():
            if metric not in names:
                problems.append(Problem(self.config_source, f"{where}.max_series.{metric}",
                                        f"{artifact.ref} has no metric {metric!r} (metrics: {', '.join(names) or 'none'})"))
        degrade = getattr(pc.budget, "degrade", None)
        if degrade is not None and degrade.knob not in m.knobs:
            problems.append(Problem(self.config_source, f"{where}.budget.degrade.knob",
                                    f"{artifact.ref} has no knob {degrade.knob!r} "
                                    f"(knobs: {', '.join(sorted(m.knobs)) or 'none'})"))
        if problems:
            raise ProblemsError(problems)

    def _apply_limits(self, prog: LoadedProgram) -> None:
        """Series limits: the config's max_series for this program, else the manifest's."""
        pc = self.program_configs.get(prog.name)
        override = pc.max_series if pc is not None else None
        for collector, _map in prog.collectors:
            n = override.get(collector.spec.name) if isinstance(override, dict) else override
            collector.set_max_series(n or collector.spec.max_series or DEFAULT_MAX_SERIES)

    def _failed(self, slot: Slot, e: Exception, old: LoadedProgram | None) -> str:
        slot.load_errors += 1
        self.on_change()
        slot.error = str(e).splitlines()[0] if isinstance(e, LoadError) else str(e)
        slot.verifier_log = getattr(e, "log_tail", "")
        if old is None:
            slot.variants = getattr(e, "variants", ())
        slot.last_change = time.time()
        if old is not None:
            log.error("upgrade of %s failed, still serving %s: %s", slot.name, old.artifact.ref, e)
            slot.error = f"upgrade to {slot.wanted.version} failed, still running {old.artifact.version}: {slot.error}"
        else:
            log.error("program %s not loaded: %s", slot.name, e)
        return slot.error

    def unload(self, name: str) -> bool:
        with self.lock:
            slot = self.slots.pop(name, None)
            if slot is None:
                return False
            if slot.running:
                slot.running.close()
                log.info("unloaded %s", slot.running.artifact.ref)
            self.on_change()
            return True

    def trip(self, name: str, reason: str) -> bool:
        """The circuit breaker's last step: detach and unload, keep the slot (state "tripped",
        with the reason) until the program is deployed again. -> whether it was running."""
        with self.lock:
            slot = self.slots.get(name)
            if slot is None or slot.running is None:
                return False
            ref = slot.running.artifact.ref
            slot.running.close()
            slot.running, slot.tripped, slot.error = None, reason, None
            slot.last_change = time.time()
            self.on_change()
            log.error("circuit breaker: detached and unloaded %s: %s", ref, reason)
            return True

    def close(self) -> None:
        with self.lock:
            for name in list(self.slots):
                self.unload(name)

    # ---- reading ----
    def running(self) -> list[LoadedProgram]:
        return [s.running for s in self.slots.values() if s.running]

    def snapshot(self) -> Snapshot:
        """Read every running program's maps and stats, and every slot's state, at one moment."""
        with self.lock:
            t0 = time.perf_counter()
            programs = []
            for p in self.running():
                try:
                    programs.append(p.read())
                except Exception:  # one broken program must not take the others down
                    log.exception("reading %s failed", p.artifact.ref)
                    self.slots[p.name].read_errors += 1
            slots = tuple(SlotState(s.name, bool(s.running and s.running.obj.attached),
                                    s.running.artifact.version if s.running else None,
                                    s.running.artifact.digest if s.running else None,
                                    s.load_errors, s.read_errors, s.variants, s.not_applicable)
                          for s in self.slots.values())
            return Snapshot(time.time_ns(), time.monotonic(), tuple(programs), slots,
                            time.perf_counter() - t0)

    def kernel_stats(self) -> dict[str, tuple]:
        """name -> (running LoadedProgram or None, {BPF program: KernelStats}): bpf_stats only,
        no map reads (what the circuit breaker measures)."""
        with self.lock:
            out = {}
            for name, s in self.slots.items():
                stats = {}
                if s.running is not None:
                    try:
                        stats = s.running.program_stats()
                    except Exception:
                        log.exception("reading bpf_stats of %s failed", s.running.artifact.ref)
                out[name] = (s.running, stats)
            return out

    def consume_events(self, limit: int) -> None:
        """At most `limit` records per ring buffer: the lock (which scrapes wait for) is held
        for one bounded pass however fast the programs write."""
        with self.lock:
            for p in self.running():
                p.consume_events(limit)

    def status(self) -> list[dict]:
        with self.lock:
            out = []
            for slot in self.slots.values():
                s = slot.status()
                if slot.running:
                    s["programs"] = {n: {"run_time_ns": k.run_time_ns, "run_count": k.run_cnt}
                                     for n, k in slot.running.program_stats().items()}
                out.append(s)
            return out


def _same(slot: Slot, pc: ProgramConfig, registry: Path) -> bool:
    """Is `pc` exactly what already runs (same resolved version, same knobs)?"""
    running = slot.running
    if running.knobs != pc.knobs or slot.wanted.variant != pc.variant or slot.wanted.attach != pc.attach:
        return False
    if pc.version != "latest":
        return pc.version == running.artifact.version
    versions = reg.versions(registry, pc.name)
    return bool(versions) and versions[-1] == running.artifact.version
