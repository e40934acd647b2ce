"""docs/write-a-program.md, followed to the letter: its code blocks are the program a newcomer
writes; building it, enabling it and driving its event must show the documented metric."""
from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from harness import build, copy_registry, deadline_poll

DOC = Path(__file__).resolve().parents[2] / "docs" / "write-a-program.md"


def walkthrough_files() -> tuple[str, str]:
    text = DOC.read_text()
    source = re.search(r"```c\n(.*?)```", text, re.S).group(1)
    manifest = re.search(r"```toml\n(name = .*?)```", text, re.S).group(1)
    return source, manifest


def test_walkthrough_program_builds_loads_and_counts(tmp_path, exporters):
    source, manifest = walkthrough_files()
    prog_dir = tmp_path / "signals"
    prog_dir.mkdir()
    (prog_dir / "signals.bpf.c").write_text(source)
    (prog_dir / "manifest.toml").write_text(manifest)
    registry = copy_registry(exporters.registry, tmp_path / "registry")
    (result,) = build(registry, prog_dir)
    assert result["status"] == "built", result

    e = exporters({"signals": {}, "syscalls": {}}, registry=registry)
    assert e.program("signals")["state"] == "attached"
    child = subprocess.Popen(["sleep", "30"])
    comm = Path(f"/proc/{child.pid}/comm")
    deadline_poll(lambda: comm.read_text().strip() == "sleep", timeout=10, what="the child to exec sleep")
    os.kill(child.pid, signal.SIGTERM)
    child.wait()

    def counted():
        m = e.metrics()
        return m.has("signals_generated_total", signal="SIGTERM", comm="sleep") and m
    try:
        m = deadline_poll(counted, timeout=10, what="signals_generated_total{signal=SIGTERM,comm=sleep}")
    except AssertionError:
        seen = [s for s in e.metrics().find("signals_generated_total")]
        raise AssertionError(f"no SIGTERM to sleep counted; signals_generated_total has: {seen}")
    assert m.value("signals_generated_total", signal="SIGTERM", comm="sleep") >= 1
