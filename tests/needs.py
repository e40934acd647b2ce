"""What a folder of real-kernel tests needs from the machine: root and some tools. Without them
its tests are skipped with the reason (importable from anywhere under tests/, see conftest.py)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def skip_folder_unless_able(items, folder: Path, what: str, tools: tuple[str, ...]) -> None:
    """Mark the tests under `folder` skipped unless we are root and every tool is on PATH."""
    reason = None
    if os.geteuid() != 0:
        reason = f"{what} load BPF programs: run as root"
    elif any(shutil.which(t) is None for t in tools):
        reason = f"{what} need {' and '.join(tools)}"
    if reason:
        for item in items:
            if folder in Path(str(item.fspath)).parents:
                item.add_marker(pytest.mark.skip(reason=reason))
