"""SSH keys and the ssh client, as the lab uses them (argv built here, run by system.py)."""
from __future__ import annotations

from pathlib import Path

from orchestrator.lab.plan import SSH_COMMON_ARGS, Host
from orchestrator.lab.system import Completed, run


def ensure_key(path: Path, comment: str) -> Path:
    """An ed25519 key pair at `path` (+ .pub), generated once and kept."""
    path = Path(path)
    if not (path.exists() and path.with_suffix(".pub").exists()):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for p in (path, path.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path)
    return path


def ssh_argv(host: Host, key: Path, connect_timeout: int = 10) -> list[str]:
    return (["ssh", "-i", str(key), "-p", str(host.ssh_port), "-o", "BatchMode=yes",
             "-o", f"ConnectTimeout={connect_timeout}", "-o", "LogLevel=ERROR"]
            + SSH_COMMON_ARGS.split() + [f"root@{host.address}"])


def ssh(host: Host, key: Path, command: str, timeout: float = 30, connect_timeout: int = 10,
        check: bool = True) -> Completed:
    """Run `command` on `host` as root; LabError (with ssh's stderr) if it fails and `check`."""
    return run(*ssh_argv(host, key, connect_timeout), "--", command, check=check, timeout=timeout,
               what=f"ssh {host.name} ({host.address}:{host.ssh_port}) {command!r}")
