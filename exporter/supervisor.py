"""The set of programs an exporter runs: load, unload, upgrade with rollback, and read them.

One lock serialises lifecycle changes and reads, so a scrape never sees a half-swapped program.
A program that fails stays in the table with its error, so /status and the metrics can say why.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bpfleet import manifest as manifest_mod, registry as reg
from bpfleet.problems import ProblemsError
from exporter.config import Config, ProgramConfig
from exporter.loader import LoadError, LoadedProgram, load_program
from exporter.snapshot import SlotState, Snapshot

log = logging.getLogger("bpfleet.exporter")


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

    def status(self) -> dict:
        p = self.running
        return {
            "name": self.name,
            "wanted_version": self.wanted.version,
            "version": p.artifact.version if p else None,
            "digest": p.artifact.digest if p else None,
            "state": "attached" if p and p.obj.attached else "failed" if self.error else "stopped",
            "error": self.error,
            "verifier_log": self.verifier_log or None,
            "load_errors": self.load_errors,
            "knobs": p.knobs if p else self.wanted.knobs,
            "last_change": self.last_change,
            "last_swap_seconds": self.last_swap_seconds,
        }


class Supervisor:
    def __init__(self, registry: str, pin_root: str, config_source: str, trusted_keys=()):
        self.registry, self.pin_root, self.config_source = Path(registry), pin_root, config_source
        self.trusted_keys = [Path(k) for k in trusted_keys]
        self.slots: dict[str, Slot] = {}
        self.lock = threading.RLock()
        self.on_change = lambda: None   # called after every load, upgrade and unload

    # ---- lifecycle ----
    def apply(self, config: Config) -> dict[str, str | None]:
        """Make the running set match `config`. -> name → error (None when fine)."""
        with self.lock:
            self.config_source = config.source
            self.trusted_keys = [Path(k) for k in config.trusted_keys]
            results = {}
            for name in [n for n in self.slots if n not in config.programs]:
                self.unload(name)
                results[name] = None
            for name, pc in config.programs.items():
                slot = self.slots.get(name)
                if slot and slot.running and _same(slot, pc, self.registry):
                    slot.wanted, slot.error, slot.verifier_log = pc, None, ""
                    results[name] = None
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
                self._check_metric_names(artifact)
                new, reused = load_program(artifact, pc.knobs, self.pin_root,
                                           f"{self.config_source}: programs.{pc.name}", old)
            except (LoadError, ProblemsError) as e:
                return self._failed(slot, e, old)
            # The new version is attached and the old one detached (exporter/handover.py).
            if old is not None:
                old.close()
            slot.last_swap_seconds = time.perf_counter() - t0 if old else None
            slot.running, slot.error, slot.verifier_log = new, None, ""
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

    def _failed(self, slot: Slot, e: Exception, old: LoadedProgram | None) -> str:
        slot.load_errors += 1
        self.on_change()
        slot.error = str(e).splitlines()[0] if isinstance(e, LoadError) else str(e)
        slot.verifier_log = getattr(e, "log_tail", "")
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
                                    s.load_errors, s.read_errors) for s in self.slots.values())
            return Snapshot(time.time_ns(), time.monotonic(), tuple(programs), slots,
                            time.perf_counter() - t0)

    def consume_events(self) -> None:
        with self.lock:
            for p in self.running():
                p.consume_events()

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
    if running.knobs != pc.knobs:
        return False
    if pc.version != "latest":
        return pc.version == running.artifact.version
    versions = reg.versions(registry, pc.name)
    return bool(versions) and versions[-1] == running.artifact.version
