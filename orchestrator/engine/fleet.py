"""What a rollout needs from the hosts, as an interface, and the plain data that crosses it.

orchestrator/engine/rollout.py drives any `Fleet`; orchestrator/ansible/fleet.py implements it with
playbooks run through ansible-runner, and the tests implement it in memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.engine.gates import Observation


@dataclass(frozen=True)
class HostFacts:
    host: str
    reachable: bool
    kernel: str = ""                 # kernel build: `uname -r` and `uname -v`
    btf: bool = False
    running: str | None = None       # version of the program the host runs now, None if none
    error: str = ""


@dataclass(frozen=True)
class Artifact:
    program: str
    version: str
    digest: str
    path: str                        # the registry directory holding it, on the control machine


@dataclass(frozen=True)
class Outcome:
    host: str
    ok: bool
    error: str = ""
    unreachable: bool = False


class Fleet(Protocol):
    def facts(self, hosts: list[str], program: str) -> dict[str, HostFacts]: ...

    def preflight(self, host: str, artifact: Artifact) -> Outcome:
        """Stage the artifact and load it without attaching (a verifier check); change nothing."""

    def upgrade(self, hosts: list[str], artifact: Artifact) -> dict[str, Outcome]:
        """Stage (digest checked, previous version kept) and switch the exporter to it."""

    def observe(self, hosts: list[str], program: str) -> dict[str, Observation]:
        """Each host's exporter status for `program` (cumulative run time and count)."""

    def rollback(self, hosts: list[str], program: str, versions: dict[str, str | None]) -> dict[str, Outcome]:
        """Put each host back on versions[host] (None: unload the program)."""
