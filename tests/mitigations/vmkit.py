"""A lab VM (Debian 6.1, BPF-LSM on) running a bpfleet exporter from this checkout, for the
LSM mitigation tests. The lab is our own (BPFLEET_LAB_* below, or from the environment); when
it cannot be started the tests fail with the reason — they never skip silently."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIT_LAB = {k: os.environ.get(k, v) for k, v in {
    "BPFLEET_LAB_DIR": "/var/lib/bpfleet-lab-mit",
    "BPFLEET_LAB_PREFIX": "bpflmit",
    "BPFLEET_LAB_SUBNET": "10.213.220.0/24",
    "BPFLEET_LAB_PORT_BASE": "42900",
}.items()}
GUEST_DIR = "/opt/bpflmit"
ADMIN_SOCKET = "/run/bpflmit/admin.sock"
# A tiny admin API client for the guest (no curl there): METHOD PATH [JSON] -> "code json".
ADMIN_CLIENT = r'''
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
c = C("x", timeout=60)
c.request(sys.argv[2], sys.argv[3], body=sys.argv[4].encode() if len(sys.argv) > 4 else None)
r = c.getresponse(); print(r.status, r.read().decode().replace("\n", " "))
'''


def lab(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bpfleet.cli", "lab", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **MIT_LAB, "PYTHONPATH": str(ROOT)})


class Guest:
    def __init__(self, host: dict):
        self.host = host

    def sh(self, command: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(self.host["ssh"].split() + ["--", command], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError(f"in the VM: {command!r}: exit {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def put_tar(self, data: bytes, directory: str) -> None:
        p = subprocess.run(self.host["ssh"].split() + ["--", f"mkdir -p {directory} && tar -x -C {directory}"],
                           input=data, capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr.decode(errors="replace")

    def admin(self, method: str, path: str, body=None) -> tuple[int, dict]:
        arg = "" if body is None else " " + _quote(json.dumps(body))
        out = self.sh(f"python3 {GUEST_DIR}/admin_client.py {ADMIN_SOCKET} {method} {path}{arg}").stdout
        code, _, text = out.strip().partition(" ")
        return int(code), json.loads(text)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def checkout_tar(registry: Path) -> bytes:
    """bpfleet, exporter and orchestrator sources, the pure-Python host requirements (tomli,
    prometheus_client) and the registry, as one tar for GUEST_DIR."""
    import prometheus_client
    import tomli
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for pkg in ("core", "exporter", "orchestrator", "bpfleet"):
            for f in sorted((ROOT / pkg).rglob("*.py")):
                tar.add(f, arcname=str(f.relative_to(ROOT)))
        for mod in (tomli, prometheus_client):
            d = Path(mod.__file__).parent
            for f in sorted(d.rglob("*.py")):
                tar.add(f, arcname=f"{d.name}/{f.relative_to(d)}")
        tar.add(registry, arcname="registry")
        data = ADMIN_CLIENT.encode()
        info = tarfile.TarInfo("admin_client.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def start_exporter(guest: Guest, config: str, timeout: float = 180) -> None:
    guest.sh(f"cat > {GUEST_DIR}/exporter.toml <<'EOF'\n{config}\nEOF")
    guest.sh(f"cd {GUEST_DIR} && (setsid env PYTHONPATH={GUEST_DIR} python3 -m bpfleet.cli exporter "
             f"--config {GUEST_DIR}/exporter.toml --registry {GUEST_DIR}/registry "
             f"> {GUEST_DIR}/exporter.log 2>&1 < /dev/null & echo $! > {GUEST_DIR}/exporter.pid)")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        log = guest.sh(f"cat {GUEST_DIR}/exporter.log", check=False).stdout
        if '"event": "ready"' in log:
            return
        if guest.sh(f"kill -0 $(cat {GUEST_DIR}/exporter.pid)", check=False).returncode != 0:
            raise AssertionError(f"the exporter in the VM exited:\n{log}")
        time.sleep(2)
    raise AssertionError(f"the exporter in the VM was not ready in {timeout} s:\n{log}")


def stop_exporter(guest: Guest) -> str:
    guest.sh(f"kill $(cat {GUEST_DIR}/exporter.pid); for i in $(seq 60); do "
             f"kill -0 $(cat {GUEST_DIR}/exporter.pid) 2>/dev/null || break; sleep 0.5; done", check=False)
    return guest.sh(f"cat {GUEST_DIR}/exporter.log", check=False).stdout
