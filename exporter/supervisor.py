"""The set of programs an exporter runs: load, unload, upgrade with rollback, and read them.

Everything goes through the methods below; nobody else holds the lock or sees the slots.
Lifecycle: apply (the config), resolve + deploy, unload, trip (the circuit breaker). Reading:
view / views (frozen ProgramViews), read_metric, edit_map (a mitigation's mode and lists),
snapshot (what scrapes and pushes render), status.

One lock serialises lifecycle changes and reads, so a scrape never sees a half-swapped program.
A program that fails stays in the table with its error, so /status and the metrics can say why.
The manifest is read once per deploy (exporter/load/loader.py `Resolved`) and handed down.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

from core.problems import ProblemsError
from exporter import btf_source
from exporter.btf_source import BtfConfig
from exporter.checks import check_metric_names, check_overrides, same_as_running
from exporter.config import Config, ProgramConfig
from core.series import Family
from exporter.load import loader as loader_mod
from exporter.load.errors import LoadError, NotApplicableOnHost
from exporter.load.loader import Resolved
from exporter.load.program import LoadedProgram
from exporter.slot import ProgramView, Slot
from exporter.snapshot import SlotState, Snapshot

log = logging.getLogger("bpfleet.exporter")
T = TypeVar("T")
ANY = object()     # deploy / trip `expect`: whatever runs now


class Supervisor:
    def __init__(self, registry: str, pin_root: str, config_source: str, trusted_keys=(), *,
                 load=loader_mod.load, before_load: tuple[Callable, ...] = (),
                 on_change: Callable[[], None] = lambda: None):
        """`load`: exporter/load/loader.py's (tests pass a fake). `before_load`: each is called
        with the Artifact before it is loaded (the tests' fault injection). `on_change`: after
        every load, upgrade and unload, under the lock."""
        self._registry, self._pin_root, self._source = Path(registry), pin_root, config_source
        self._trusted_keys = [Path(k) for k in trusted_keys]
        self._load, self._before_load, self._on_change = load, tuple(before_load), on_change
        self._slots: dict[str, Slot] = {}
        # The config's [programs.<name>] tables: per-host overrides (max_series, budget) hold
        # whoever deploys, the config or the admin API.
        self._configs: dict[str, ProgramConfig] = {}
        self._btf = BtfConfig()          # the config's [btf] (exporter/btf_source.py)
        self._event_sink = None
        self._lock = threading.RLock()

    # ---- lifecycle ----
    def apply(self, config: Config) -> dict[str, str | None]:
        """Make the running set match `config`. -> name → error (None when fine)."""
        with self._lock:
            self._source = config.source
            self._trusted_keys = [Path(k) for k in config.trusted_keys]
            self._configs = dict(config.programs)
            self._btf = config.btf
            results = {}
            # Mitigations have their own slots, applied by exporter/mitigations/manager.py.
            for name in [n for n in self._slots if n not in config.programs and n not in config.mitigations]:
                self.unload(name)
                results[name] = None
            for name, pc in config.programs.items():
                slot = self._slots.get(name)
                if slot and slot.running and same_as_running(slot.running, slot.wanted, pc, self._registry):
                    slot.wanted, slot.error, slot.verifier_log = pc, None, ""
                    try:
                        check_overrides(slot.running.plan.manifest, slot.running.artifact.ref, pc, self._source)
                        slot.running.limit_series(pc.max_series)
                    except ProblemsError as e:
                        slot.error = str(e)
                        log.error("%s", e)
                    results[name] = slot.error
                    continue
                results[name] = self.deploy(pc)
            return results

    def resolve(self, name: str, version: str = "latest") -> Resolved:
        """name@version from the registry (checked against the trusted keys), manifest read.
        ProblemsError says what is wrong."""
        return loader_mod.resolve(self._registry, name, version, self._trusted_keys)

    def deploy(self, pc: ProgramConfig, digest: str | None = None, *, resolved: Resolved | None = None,
               expect=ANY) -> str | None:
        """Load `pc`, or upgrade to it if a version runs already. `resolved`: the artifact as the
        caller resolved it (not read again); `expect`: only if this LoadedProgram (or None:
        nothing) runs now. -> error text or None."""
        with self._lock:
            current = self._slots.get(pc.name)
            if expect is not ANY and (current.running if current else None) is not expect:
                return f"{pc.name} changed meanwhile; not deployed"
            slot = self._slots.setdefault(pc.name, Slot(pc.name, pc))
            slot.wanted = pc
            old = slot.running
            t0 = time.perf_counter()
            try:
                r = resolved or self.resolve(pc.name, pc.version)
                if digest and r.artifact.digest != digest:
                    raise LoadError(str(r.artifact.dir), f"digest mismatch: the registry has "
                                    f"{r.artifact.digest}, the caller asked for {digest}; refusing")
                for hook in self._before_load:
                    hook(r.artifact)
                check_metric_names(r.manifest, r.artifact.name, self._running())
                check_overrides(r.manifest, r.artifact.ref, self._configs.get(pc.name), self._source)
                btf_path = btf_source.resolve(self._btf, self._source)
                new, reused = self._load(r, pc.knobs, self._pin_root, f"{self._source}: programs.{pc.name}",
                                         old, pc.variant, btf_path, pc.attach)
            except NotApplicableOnHost as e:
                slot.not_applicable, slot.error, slot.last_change = e.message, None, time.time()
                self._on_change()
                log.info("program %s is not applicable on this host: %s", pc.name, e.message)
                return None
            except (LoadError, ProblemsError) as e:
                return self._failed(slot, e, old)
            # The new version is attached and the old one detached (exporter/handover.py).
            if old is not None:
                old.close()
            new.event_sink = self._event_sink
            slot.last_swap_seconds = time.perf_counter() - t0 if old else None
            slot.running, slot.error, slot.verifier_log = new, None, ""
            slot.tripped, slot.variants, slot.not_applicable = None, new.variants, None
            config = self._configs.get(pc.name)
            new.limit_series(config.max_series if config is not None else None)
            slot.last_change = time.time()
            self._on_change()
            verb = f"upgraded {old.artifact.ref} →" if old else "loaded"
            log.info("%s %s (sha256:%s)%s", verb, new.artifact.ref, new.artifact.digest[:12],
                     f", kept maps {', '.join(reused)}" if reused else "")
            return None

    def _failed(self, slot: Slot, e: Exception, old: LoadedProgram | None) -> str:
        slot.load_errors += 1
        self._on_change()
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
        """Detach, unload and forget `name`. -> whether it was configured."""
        with self._lock:
            slot = self._slots.pop(name, None)
            if slot is None:
                return False
            if slot.running:
                slot.running.close()
                log.info("unloaded %s", slot.running.artifact.ref)
            self._on_change()
            return True

    def trip(self, name: str, reason: str, *, expect=ANY) -> bool:
        """The circuit breaker's last step: detach and unload, keep the slot (state "tripped",
        with the reason) until the program is deployed again. `expect`: only if this
        LoadedProgram runs now. -> whether it was running (and now is not)."""
        with self._lock:
            slot = self._slots.get(name)
            if slot is None or slot.running is None or expect is not ANY and slot.running is not expect:
                return False
            ref = slot.running.artifact.ref
            slot.running.close()
            slot.running, slot.tripped, slot.error = None, reason, None
            slot.last_change = time.time()
            self._on_change()
            log.error("circuit breaker: detached and unloaded %s: %s", ref, reason)
            return True

    def set_event_sink(self, sink) -> None:
        """Where every running (and later loaded) program's ring-buffer records go
        (LoadedProgram.event_sink); None: nowhere."""
        with self._lock:
            self._event_sink = sink
            for p in self._running():
                p.event_sink = sink
            self._on_change()

    def close(self) -> None:
        with self._lock:
            for name in list(self._slots):
                self.unload(name)

    # ---- reading ----
    def _running(self) -> list[LoadedProgram]:
        return [s.running for s in self._slots.values() if s.running]

    def view(self, name: str) -> ProgramView | None:
        with self._lock:
            slot = self._slots.get(name)
            return slot.view(self._configs.get(name)) if slot else None

    def views(self, kernel_stats: bool = False) -> dict[str, ProgramView]:
        """Every configured program; `kernel_stats`: with its bpf_stats (no map is read)."""
        with self._lock:
            return {name: s.view(self._configs.get(name), self._kernel_stats(s) if kernel_stats else None)
                    for name, s in self._slots.items()}

    def _kernel_stats(self, slot: Slot) -> dict:
        if slot.running is None:
            return {}
        try:
            return slot.running.program_stats()
        except Exception:
            log.exception("reading bpf_stats of %s failed", slot.running.artifact.ref)
            return {}

    def read_metric(self, name: str, metric: str) -> Family:
        """One metric of a running program, read now. LookupError: not running, no such metric."""
        with self._lock:
            return self._program(name).metric_family(metric)

    def edit_map(self, name: str, map_name: str, edit: Callable[[int, object], T]) -> T:
        """edit(fd, MapInfo) on a map of a running program, which stays loaded meanwhile.
        LookupError: not running, no such map."""
        with self._lock:
            obj = self._program(name).obj
            maps = obj.maps()
            if map_name not in maps:
                raise LookupError(f"{name} has no map {map_name!r}")
            return edit(obj.map_fd(map_name), maps[map_name])

    def _program(self, name: str) -> LoadedProgram:
        slot = self._slots.get(name)
        if slot is None or slot.running is None:
            raise LookupError(f"{name} has no loaded program")
        return slot.running

    def snapshot(self) -> Snapshot:
        """Read every running program's maps and stats, and every slot's state, at one moment."""
        with self._lock:
            t0 = time.perf_counter()
            programs = []
            for p in self._running():
                try:
                    programs.append(p.read())
                except Exception:  # one broken program must not take the others down
                    log.exception("reading %s failed", p.artifact.ref)
                    self._slots[p.name].read_errors += 1
            slots = tuple(SlotState(s.name, bool(s.running and s.running.obj.attached),
                                    s.running.artifact.version if s.running else None,
                                    s.running.artifact.digest if s.running else None,
                                    s.load_errors, s.read_errors, s.variants, s.not_applicable)
                          for s in self._slots.values())
            return Snapshot(time.time_ns(), time.monotonic(), tuple(programs), slots,
                            time.perf_counter() - t0)

    def consume_events(self, limit: int) -> None:
        """At most `limit` records per ring buffer: the lock (which scrapes wait for) is held
        for one bounded pass however fast the programs write."""
        with self._lock:
            for p in self._running():
                p.consume_events(limit)

    def status(self) -> list[dict]:
        with self._lock:
            out = []
            for slot in self._slots.values():
                s = slot.status()
                if slot.running:
                    s["programs"] = {n: {"run_time_ns": k.run_time_ns, "run_count": k.run_cnt}
                                     for n, k in slot.running.program_stats().items()}
                out.append(s)
            return out

