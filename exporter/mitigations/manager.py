"""Mitigations at run time (docs/mitigations.md): apply, switch mode, replace lists, expire,
retire on a fixed kernel, revoke — and say so in /status, the log and the metrics.

A running mitigation is an ordinary supervisor program (so load, upgrade, budgets and metrics
are the program machinery's, reached through the Supervisor's interface only); this module adds
what a mitigation has on top: its mode map, its lists, its expiry, and the states in which it is
deliberately *not* running. Its own lock guards its own state.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from core.listkinds import KINDS, encode_entries
from core.mitigation import ACTIONS, MODES, MitigationSpec, NotRunning, fixed_by
from core.problems import Problem, ProblemsError
from exporter import libbpf
from exporter.config import ProgramConfig
from core.series import Family, labels
from exporter.mitigations.config import MitigationConfig
from exporter.kernel_features import running_kernel, unavailable
from exporter.supervisor import Supervisor

log = logging.getLogger("bpfleet.mitigations")
# Every state a mitigation can be in; the state metric has one series per state (0 or 1).
STATES = ("monitor", "enforce", "expired", "retired", "not_applicable", "revoked", "failed")
MAX_LIST_ENTRIES = 1 << 20


@dataclass
class Mitigation:
    name: str
    config: MitigationConfig
    spec: MitigationSpec | None = None
    version: str | None = None
    state: str = "failed"
    reason: str | None = None
    mode: str | None = None
    expires_at: float | None = None
    lists: dict = field(default_factory=dict)   # list name -> entries as given
    since: float = field(default_factory=time.time)

    def status(self) -> dict:
        s = self.spec
        return {"name": self.name, "version": self.version, "state": self.state, "reason": self.reason,
                "mode": self.mode, "expires_at": self.expires_at, "since": self.since,
                "answers": list(s.answers) if s else None, "blocks": s.blocks if s else None,
                "fixed_in": list(s.fixed_in) if s else None,
                "lists": {n: {"role": ls.role, "kind": ls.kind, "entries": self.lists.get(n, [])}
                          for n, ls in (s.lists.items() if s else ())}}


class Mitigations:
    def __init__(self, supervisor: Supervisor, clock=time.time, kernel: str | None = None):
        self.supervisor, self.clock = supervisor, clock
        self._lock = threading.RLock()
        self.kernel = kernel or running_kernel()
        self.items: dict[str, Mitigation] = {}
        self.revoked: set[str] = set()   # kept through reloads until applied again through the API
        self._previous: Mitigation | None = None   # during apply(): what ran before

    # ---- lifecycle ----
    def apply_config(self, configs: dict) -> dict[str, str | None]:
        """Make the mitigations match the config's [mitigations]. -> name -> error or None."""
        with self._lock:
            for name in [n for n in self.items if n not in configs]:
                self._stop(name, "removed from the config")
                del self.items[name]
            return {name: self.apply(mc) for name, mc in configs.items() if name not in self.revoked}

    def apply(self, mc: MitigationConfig) -> str | None:
        """Enable (or re-apply) one mitigation. -> error text, or None (also when it is
        deliberately not running: retired, expired, not applicable — see its state)."""
        with self._lock:
            self.revoked.discard(mc.name)
            old = self._previous = self.items.get(mc.name)
            m = Mitigation(mc.name, mc)
            if old is not None and old.config == mc and old.state in ("monitor", "enforce", "expired"):
                return None   # a reload with nothing new: keep the running one (and its since)
            self.items[mc.name] = m
            try:
                resolved = self.supervisor.resolve(mc.name, mc.version)
                artifact, manifest = resolved.artifact, resolved.manifest
                if manifest.mitigation is None:
                    raise ProblemsError([Problem(str(artifact.manifest_path), "mitigation",
                                                 f"{artifact.ref} is not a mitigation (no [mitigation] table)")])
            except ProblemsError as e:
                return self._fail(m, str(e))
            m.spec, m.version = manifest.mitigation, artifact.version
            keys = self._encode_lists(m)
            if isinstance(keys, str):
                return self._fail(m, keys)
            ttl = mc.ttl_seconds or m.spec.ttl_seconds
            m.expires_at = mc.expires_at if mc.expires_at is not None else \
                (old.expires_at if old and old.expires_at and old.config.ttl_seconds == mc.ttl_seconds
                 else self.clock() + ttl)
            why_not = self._why_not_running(m, manifest.program_types)
            if why_not:
                self._stop(mc.name, why_not[1])
                m.state, m.reason = why_not
                log.warning("mitigation %s@%s: %s — %s", m.name, m.version, m.state, m.reason)
                return None
            error = self.supervisor.deploy(ProgramConfig(mc.name, artifact.version, mc.knobs,
                                                         attach=mc.attach), resolved=resolved)
            if error:
                return self._fail(m, error)
            try:
                for list_name in keys:
                    try:
                        self._write_list(m, list_name, m.config.lists[list_name])
                    except (ValueError, libbpf.LibbpfError) as e:
                        self._stop(mc.name, "its lists could not be written")
                        return self._fail(m, f"{mc.where}.lists.{list_name}{e}")
                self._write_mode(m, mc.mode or m.spec.default_mode)
            except LookupError as e:   # tripped or unloaded meanwhile: the breaker does not wait for us
                return self._fail(m, str(e))
            log.info("mitigation %s@%s %s (answers %s), expires %s", m.name, m.version, m.mode,
                     ", ".join(m.spec.answers), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(m.expires_at)))
            return None

    def _why_not_running(self, m: Mitigation, program_types) -> tuple[str, str] | None:
        fixed = fixed_by(self.kernel, m.spec.fixed_in)
        if fixed:
            return "retired", f"kernel {self.kernel} has the fix (fixed in {fixed})"
        if m.expires_at <= self.clock():
            return "expired", f"expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(m.expires_at))}"
        reason = unavailable(program_types)
        return ("not_applicable", reason) if reason else None

    def _fail(self, m: Mitigation, error: str) -> str:
        """A failed apply; when the previous version still runs (a failed upgrade leaves it in
        place), that one's state stands and only the error is returned."""
        view = self.supervisor.view(m.name)
        if self._previous is not None and view is not None and view.running is not None:
            self.items[m.name] = self._previous
            log.error("mitigation %s: %s (still running the previous settings)", m.name, error)
            return f"{error} (still running the previous settings)"
        m.state, m.reason = "failed", error
        log.error("mitigation %s: %s", m.name, error)
        return error

    def _stop(self, name: str, why: str) -> None:
        if self.supervisor.unload(name):
            log.warning("mitigation %s unloaded: %s", name, why)

    def revoke(self, name: str) -> bool:
        """The kill switch: unload now and stay off until applied again. -> whether it was known."""
        with self._lock:
            m = self.items.get(name)
            found = self.supervisor.unload(name) or m is not None
            if m is not None:
                m.state, m.reason, m.since = "revoked", "revoked through the admin API", self.clock()
            self.revoked.add(name)
            log.warning("mitigation %s revoked", name)
            return found

    def expire_due(self) -> list[str]:
        """Retire every running mitigation whose time is up. -> their names."""
        with self._lock:
            due = [m for m in self.items.values()
                   if m.state in ("monitor", "enforce") and m.expires_at is not None and m.expires_at <= self.clock()]
            for m in due:
                self._stop(m.name, "TTL reached")
                m.state, m.since = "expired", self.clock()
                m.reason = f"expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(m.expires_at))}"
                log.warning("mitigation %s@%s expired and was unloaded", m.name, m.version)
            return [m.name for m in due]

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        while not stop.wait(interval):
            try:
                self.expire_due()
            except Exception:
                log.exception("mitigation expiry check")

    # ---- run-time changes (admin API) ----
    def set_mode(self, name: str, mode: str) -> None:
        """ValueError (bad input) or LookupError (not running) say what is wrong."""
        if mode not in MODES:
            raise ValueError(f"body.mode: {mode!r} is not one of: {', '.join(MODES)}")
        with self._lock:
            self._write_mode(self._running(name), mode)
            log.warning("mitigation %s switched to %s", name, mode)

    def replace_list(self, name: str, list_name: str, entries) -> dict:
        with self._lock:
            m = self._running(name)
            ls = m.spec.lists.get(list_name)
            if ls is None:
                raise LookupError(f"{name} has no list {list_name!r} (lists: {', '.join(m.spec.lists) or 'none'})")
            try:
                change = self._write_list(m, list_name, entries)
            except ValueError as e:
                raise ValueError(f"body.entries{e}") from None
            m.lists[list_name] = list(entries)
            log.warning("mitigation %s list %s replaced: %d entries (+%d, -%d)", name, list_name,
                        change["entries"], change["added"], change["removed"])
            return change

    def _running(self, name: str) -> Mitigation:
        m = self.items.get(name)
        if m is None or m.state not in ("monitor", "enforce"):
            raise NotRunning(f"mitigation {name} is not running" + (f" (state {m.state})" if m else ""))
        return m

    def _encode_lists(self, m: Mitigation) -> dict | str:
        """The config's lists as map keys; -> {list: keys}, or the problems as text."""
        problems, out = [], {}
        for list_name, entries in m.config.lists.items():
            ls = m.spec.lists.get(list_name)
            if ls is None:
                problems.append(f"{m.config.where}.lists.{list_name}: {m.name} has no list {list_name!r} "
                                f"(lists: {', '.join(m.spec.lists) or 'none'})")
                continue
            # Key sizes are checked against the object at bind time; the kind's width is enough here.
            keys, bad = encode_entries(KINDS[ls.kind], entries, _key_size_hint(ls.kind))
            problems += [f"{m.config.where}.lists.{list_name}{p}" for p in bad]
            out[list_name] = keys
            m.lists[list_name] = list(entries)
        return "; ".join(problems) if problems else out

    def _write_list(self, m: Mitigation, list_name: str, entries) -> dict:
        ls = m.spec.lists[list_name]
        return self.supervisor.edit_map(m.name, ls.map, lambda fd, info: replace_list_map(fd, info, ls, entries))

    def _write_mode(self, m: Mitigation, mode: str) -> None:
        value = MODES.index(mode).to_bytes(4, "little")
        self.supervisor.edit_map(m.name, m.spec.mode_map, lambda fd, _info: libbpf.update(fd, b"\0\0\0\0", value))
        m.mode, m.state, m.reason, m.since = mode, mode, None, self.clock()

    # ---- reporting ----
    def status(self) -> list[dict]:
        with self._lock:
            return [{**m.status(), "decisions": self._decisions(m)} for m in self.items.values()]

    def _decisions(self, m: Mitigation) -> dict | None:
        """The decisions counter summed by action ({"would_block": n, "blocked": n}): what
        `bpfleet mitigate promote` shows before it enforces. None when not running."""
        if m.spec is None:
            return None
        totals = dict.fromkeys(ACTIONS, 0)
        try:
            family = self.supervisor.read_metric(m.name, m.spec.decisions)
        except LookupError:    # not running
            return None
        except libbpf.LibbpfError as e:
            log.error("mitigation %s: reading %s: %s", m.name, m.spec.decisions, e)
            return None
        for label_set, value in family.scalars():
            action = label_set.get("action")
            if action in totals:
                totals[action] += value
        return totals

    def families(self) -> list[Family]:
        state, expiry = [], []
        with self._lock:
            for m in sorted(self.items.values(), key=lambda m: m.name):
                for s in STATES:
                    state.append(("", labels(mitigation=m.name, state=s), int(m.state == s)))
                if m.expires_at is not None:
                    expiry.append(("", labels(mitigation=m.name), m.expires_at))
        return [Family("bpfleet_mitigation_state", "gauge",
                       "1 for the state each mitigation is in: monitor, enforce, expired, retired "
                       "(kernel fixed), not_applicable (kernel cannot run it), revoked, failed", state),
                Family("bpfleet_mitigation_expiry_timestamp_seconds", "gauge",
                       "When each mitigation retires itself (unix time)", expiry)]


def _key_size_hint(kind: str) -> int:
    """Widest key a kind's entries are checked against before the object is loaded (path-like
    kinds are re-checked against the real key size when written)."""
    return {"ipv4_prefix": 8, "ipv6_prefix": 20, "comm": 16, "cgroup_id": 8, "device": 12,
            "address_family": 4}.get(kind, 256)


def replace_list_map(fd: int, info, ls, entries) -> dict:
    """Replace a list map's keys with `entries`: new ones in, missing ones out, the rest (and
    the counters they hold as values) untouched. ValueError: "[i]: what is wrong"."""
    keys, problems = encode_entries(KINDS[ls.kind], entries, info.key_size)
    if problems:
        raise ValueError("; ".join(problems))
    current = set(libbpf.keys(fd, info.key_size, MAX_LIST_ENTRIES))
    wanted = set(keys)
    value = b"\1".ljust(info.value_size, b"\0") if ls.role == "allow" else bytes(info.value_size)
    added = sum(libbpf.update(fd, k, value, libbpf.uapi.BPF_NOEXIST) for k in keys if k not in current)
    removed = sum(libbpf.delete(fd, k) for k in current - wanted)
    return {"entries": len(wanted), "added": added, "removed": removed}
