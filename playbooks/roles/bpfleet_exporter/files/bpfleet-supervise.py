#!/usr/bin/env python3
"""bpfleet-supervise: keep the bpfleet exporter running on a host without systemd.

    bpfleet-supervise CONFIG start|stop|restart|status|run
    bpfleet-supervise ensure CONFIG CONFIG_JSON [restart] [check]

CONFIG (JSON): {"command": [...], "environment": {...}, "log", "pidfile", "child_pidfile",
"state_file", "socket", "self"}. `ensure` is what the bpfleet_exporter role runs (one task, sent
by ansible.builtin.script): it installs this script at "self" and CONFIG_JSON at CONFIG when they
differ, then starts the supervisor, or restarts it if anything changed or `restart` is given,
and prints {"changed", "action", "pid"}; with `check`, it only says so. `start` detaches a `run` process (its pid in
`pidfile`) and waits until the exporter answers on its admin socket; `run` starts the exporter,
and whenever it exits, starts it again after a short back-off (1 s, doubling up to 10 s while it
keeps dying within 10 s of starting). The exporter re-reads its config file at every start, so a
restart after a crash comes back on the last configuration that was written — the version the
orchestrator last switched to successfully. SIGTERM stops both; SIGHUP is passed to the exporter
(reload). Standard library only.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

QUICK_EXIT, MAX_DELAY = 10.0, 10.0


def log(cfg: dict, msg: str) -> None:
    with open(cfg["log"], "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} bpfleet-supervise[{os.getpid()}]: {msg}\n")


def read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_supervisor(pid: int | None, config_path: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"run" in argv and os.fsencode(config_path) in argv


def write_state(cfg: dict, **state) -> None:
    tmp = cfg["state_file"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, cfg["state_file"])


def run(cfg: dict, config_path: str) -> int:
    with open(cfg["pidfile"], "w") as f:
        f.write(f"{os.getpid()}\n")
    stopping, child = False, None

    def on_term(*_):
        nonlocal stopping
        stopping = True
        if child and child.poll() is None:
            child.terminate()

    def on_hup(*_):
        if child and child.poll() is None:
            child.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_hup)
    restarts, delay, last = 0, 1.0, None
    while not stopping:
        started = time.monotonic()
        with open(cfg["log"], "ab") as out:
            child = subprocess.Popen(cfg["command"], stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=out, env={**os.environ, **cfg.get("environment", {})})
        with open(cfg["child_pidfile"], "w") as f:
            f.write(f"{child.pid}\n")
        write_state(cfg, supervisor=os.getpid(), exporter=child.pid, restarts=restarts,
                    last_exit=last, started_at=time.time())
        log(cfg, f"started exporter pid {child.pid}: {' '.join(cfg['command'])}")
        while True:
            try:
                code = child.wait()
                break
            except InterruptedError:
                continue
        if stopping:
            break
        ran = time.monotonic() - started
        delay = min(delay * 2, MAX_DELAY) if ran < QUICK_EXIT else 1.0
        last = {"code": code, "at": time.time(), "ran_seconds": round(ran, 3)}
        restarts += 1
        log(cfg, f"exporter pid {child.pid} exited with {code} after {ran:.1f} s; "
                 f"restarting in {delay:.0f} s (restart {restarts})")
        write_state(cfg, supervisor=os.getpid(), exporter=None, restarts=restarts, last_exit=last,
                    started_at=None)
        end = time.monotonic() + delay
        while not stopping and time.monotonic() < end:
            time.sleep(0.1)
    if child and child.poll() is None:
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    log(cfg, "stopped")
    for p in (cfg["pidfile"], cfg["child_pidfile"], cfg["state_file"]):
        try:
            os.unlink(p)
        except OSError:
            pass
    return 0


def answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def start(cfg: dict, config_path: str, timeout: float = 180) -> int:
    pid = read_pid(cfg["pidfile"])
    if pid and is_supervisor(pid, config_path):
        print(f"running {pid}")
        return 0
    for p in (cfg["log"], cfg["pidfile"]):
        os.makedirs(os.path.dirname(p), mode=0o755, exist_ok=True)
    with open(os.devnull, "rb") as null, open(cfg["log"], "ab") as out:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), config_path, "run"],
                                stdin=null, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:     # ready = the exporter answers on its admin socket
        if proc.poll() is not None:
            print(f"bpfleet-supervise exited with {proc.returncode}; see {cfg['log']}", file=sys.stderr)
            return 1
        if answers(cfg["socket"]):
            print(f"started {proc.pid}")
            return 0
        time.sleep(0.2)
    print(f"started {proc.pid}, but the exporter does not answer on {cfg['socket']} after "
          f"{timeout:.0f} s; see {cfg['log']}", file=sys.stderr)
    return 1


def stop(cfg: dict, config_path: str) -> int:
    pid = read_pid(cfg["pidfile"])
    if not (pid and is_supervisor(pid, config_path)):
        print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and is_supervisor(pid, config_path):
        time.sleep(0.1)
    if is_supervisor(pid, config_path):
        os.kill(pid, signal.SIGKILL)
        child = read_pid(cfg["child_pidfile"])
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
    print(f"stopped {pid}")
    return 0


def _replace(path: str, data: bytes, mode: int, check: bool = False) -> bool:
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    if check:
        return True
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def ensure(config_path: str, text: str, restart: bool, check: bool) -> int:
    """check: only say what would be done (Ansible's check mode)."""
    cfg = json.loads(text)
    with open(__file__, "rb") as f:
        changed = _replace(cfg["self"], f.read(), 0o755, check)
    changed |= _replace(config_path, (json.dumps(cfg, indent=2) + "\n").encode(), 0o644, check)
    pid = read_pid(cfg["pidfile"])
    running = bool(pid and is_supervisor(pid, config_path))
    action = "restarted" if running and (restart or changed) else "running" if running else "started"
    if action != "running" and not check:   # from the installed copy: Ansible removes the one it sent
        argv = [sys.executable, cfg["self"], config_path, "restart" if running else "start"]
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            error = (r.stderr or r.stdout).strip() or f"exit {r.returncode}"
            print(json.dumps({"changed": True, "action": action, "error": error}))
            print(f"bpfleet-supervise: {action[:-2]} failed: {error}", file=sys.stderr)
            return 1
    print(json.dumps({"changed": changed or action != "running", "action": action,
                      "pid": read_pid(cfg["pidfile"])}))
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "ensure" and len(argv) >= 3 and set(argv[3:]) <= {"restart", "check"}:
        return ensure(os.path.abspath(argv[1]), argv[2], "restart" in argv[3:], "check" in argv[3:])
    if len(argv) != 2 or argv[1] not in ("start", "stop", "restart", "status", "run"):
        print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
        return 2
    config_path, action = os.path.abspath(argv[0]), argv[1]
    with open(config_path) as f:
        cfg = json.load(f)
    if action == "run":
        return run(cfg, config_path)
    if action == "start":
        return start(cfg, config_path)
    if action == "stop":
        return stop(cfg, config_path)
    if action == "restart":
        stop(cfg, config_path)
        return start(cfg, config_path)
    pid = read_pid(cfg["pidfile"])
    running = bool(pid and is_supervisor(pid, config_path))
    print(f"running {pid}" if running else "not running")
    return 0 if running else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
