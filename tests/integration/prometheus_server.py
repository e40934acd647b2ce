"""A real Prometheus server for tests: its own config, TSDB directory and port; stopped for sure."""
from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from harness import deadline_poll, free_port

JOB = "bpfleet"
SCRAPE_INTERVAL = "1s"
PROMETHEUS_READY_TIMEOUT = 30.0


class Prometheus:
    """A `prometheus` server with its own config, TSDB directory and port."""

    def __init__(self, workdir: Path, targets: list[str], native_histograms: bool = False,
                 scrape_interval: str = SCRAPE_INTERVAL):
        self.flags = ["--enable-feature=native-histograms"] if native_histograms else []
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            "global:\n"
            f"  scrape_interval: {scrape_interval}\n"
            f"  scrape_timeout: {scrape_interval}\n"
            f"  evaluation_interval: {scrape_interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n")
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Prometheus":
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *self.flags],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline_poll(self._ready, PROMETHEUS_READY_TIMEOUT, what="prometheus /-/ready")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.log_tail()}") from None
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited with code {self.proc.returncode}\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self, n: int = 40) -> str:
        try:
            return "prometheus log (tail):\n" + "\n".join(self.log_path.read_text().splitlines()[-n:])
        except OSError:
            return "(no prometheus log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:          # 400/422: bad query; the body says why
            body = json.loads(e.read() or b"{}")
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> dict:
        return self.api("query", query=expr)

    def value(self, expr: str) -> float:
        res = self.query(expr)["result"]
        return float(res[0]["value"][1]) if res else 0.0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
