"""The state file: everything `lab up` started or created, so `lab down` stops exactly that.

It is rewritten (atomically) after every host that comes up, so a crash half-way through
`lab up` still leaves a record `lab down` can use."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.lab.config import LabConfig
from orchestrator.lab.plan import Host
from orchestrator.lab.system import LabError

FORMAT = 1


@dataclass
class HostRecord:
    host: Host
    pid: int | None = None          # netns: the sshd; vm: the QEMU process
    kernel: str | None = None       # `uname -r` as the host reports it
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> dict:
        return {"host": self.host.to_json(), "pid": self.pid, "kernel": self.kernel,
                "started_at": self.started_at}

    @classmethod
    def from_json(cls, d: dict) -> "HostRecord":
        return cls(host=Host(**d["host"]), pid=d.get("pid"), kernel=d.get("kernel"),
                   started_at=d.get("started_at", 0.0))


@dataclass
class LabState:
    config: LabConfig
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    bridge: str | None = None                               # set once the bridge exists
    created_dirs: list[str] = field(default_factory=list)   # mount points we had to mkdir
    image: dict | None = None                               # the VM image in use (image.Image)

    def of_kind(self, kind: str) -> list[HostRecord]:
        return sorted((r for r in self.hosts.values() if r.host.kind == kind),
                      key=lambda r: r.host.index)

    def to_json(self) -> dict:
        return {"format": FORMAT, "config": self.config.to_json(),
                "hosts": [r.to_json() for r in self.hosts.values()], "bridge": self.bridge,
                "created_dirs": self.created_dirs, "image": self.image}

    @classmethod
    def from_json(cls, d: dict) -> "LabState":
        if d.get("format") != FORMAT:
            raise ValueError(f"format {d.get('format')!r}, expected {FORMAT}")
        recs = [HostRecord.from_json(h) for h in d.get("hosts", [])]
        return cls(config=LabConfig.from_json(d["config"]), hosts={r.host.name: r for r in recs},
                   bridge=d.get("bridge"), created_dirs=list(d.get("created_dirs", [])),
                   image=d.get("image"))


def load(path: Path) -> LabState | None:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise LabError(f"{path}: permission denied (the lab's state is root's)") from None
    try:
        return LabState.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as e:
        raise LabError(f"{path}: unreadable lab state ({e}); remove it after checking "
                       "`ip netns list` and running QEMU processes by hand") from None


def save(state: LabState, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(state_dir: Path):
    """One lab command at a time per state dir (a second waits)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(state_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield
