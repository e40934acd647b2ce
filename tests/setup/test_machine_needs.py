"""scripts/debian-packages.txt is the one list of what the machine needs, and it is true:
every tool the code runs is provided by a package in it, each package really provides the
tools it claims (dpkg says so), `base` packages really are in a minimal Debian, and setup.sh
installs exactly the `install` rows. busybox-static once slipped (the lab needs /bin/busybox,
setup never installed it): removing its row makes test_every_tool_the_code_runs_is_listed fail."""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.lab import debian_packages, system
from toolscan import scan

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("core", "bpfleet", "exporter", "orchestrator", "tests", "bench", "playbooks")
BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
# In command position but not a Debian tool of this machine, and why.
NOT_DEBIAN = {
    "ansible": "pip: ansible-core comes with the project's venv (pyproject.toml)",
    "/nonexistent/lab-tool": "tests/lab: the missing-tool error itself",
    "udevadm": "optional: used only where udev runs, to let it probe a new loop device",
}
ROWS = debian_packages.load()


def provided(tool: str, listed: set[str]) -> bool:
    return tool in listed or any(os.path.basename(t) == os.path.basename(tool) for t in listed)


def test_the_table_parses_and_names_each_package_once():
    assert ROWS, f"{debian_packages.TABLE}: no rows"
    names = [r.package for r in ROWS]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_every_tool_the_code_runs_is_listed():
    listed = set(debian_packages.tool_packages(ROWS))
    found = scan(ROOT, SCANNED)
    assert {"clang", "/bin/busybox", "qemu-system-x86_64", "promtool"} <= set(found), \
        "the scanner stopped seeing tools the code is known to run"
    missing = {tool: where[:3] for tool, where in found.items()
               if tool not in NOT_DEBIAN and not provided(tool, listed)}
    assert not missing, ("tools the code runs that no package in scripts/debian-packages.txt "
                         f"provides (add a row, setup.sh installs it): {missing}")


def test_the_lab_names_the_package_of_a_missing_tool():
    assert system.TOOL_PACKAGES["/bin/busybox"] == "busybox-static"
    for tool in system.NETNS_TOOLS + system.VM_TOOLS:
        assert tool in system.TOOL_PACKAGES, f"{tool}: the lab could not say which package to install"


def test_setup_installs_exactly_the_install_rows():
    p = subprocess.run(["bash", "-c", 'source scripts/setup.sh && printf "%s\\n" "${APT_PACKAGES[@]}"'],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [r.package for r in ROWS if r.how == "install"]


def test_parse_errors_name_file_and_line():
    with pytest.raises(ValueError, match=r"t\.txt:2: expected"):
        debian_packages.parse("clang install clang\nzstd sometimes zstd\n", "t.txt")


# -- checked against dpkg: the table says what this Debian machine really has ------------------

def path_variants(path: str) -> list[str]:
    """The path as named, then resolved; each also with /usr (usrmerge registers some files
    under /bin, others under /usr/bin)."""
    out = []
    for p in (path, os.path.realpath(path)):
        out += [p, re.sub(r"^/usr/", "/", p), "/usr" + p]
    return out


@functools.lru_cache(maxsize=None)
def dpkg_owners(paths: frozenset[str]) -> dict[str, str]:
    """{path: owning package} in one dpkg-query call (each call reads every file list)."""
    out = subprocess.run(["dpkg-query", "-S", *sorted(paths)], capture_output=True, text=True).stdout
    owners = {}
    for line in out.splitlines():
        packages, _, path = line.partition(": ")
        owners[path.strip()] = packages.split(",")[0].split(":")[0].strip()
    return owners


def dpkg_owner(path: str) -> str | None:
    all_paths = frozenset(v for row in ROWS for t in row.tools if (w := where(t))
                          for v in path_variants(w))
    owners = dpkg_owners(all_paths)
    return next((owners[v] for v in path_variants(path) if v in owners), None)


def depends(package: str) -> set[str]:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Depends}|${Pre-Depends}", package],
                         capture_output=True, text=True).stdout
    return {re.split(r"[\s:(]", alt.strip())[0] for alt in re.split(r"[,|]", out) if alt.strip()}


def where(tool: str) -> str | None:
    if tool.startswith("py:"):
        spec = importlib.util.find_spec(tool[3:])
        return spec.origin if spec else None
    if tool.startswith("/"):
        return tool if os.path.exists(tool) else None
    return next((f"{d}/{tool}" for d in BIN_DIRS if os.access(f"{d}/{tool}", os.X_OK)), None)


needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian machine")


@needs_dpkg
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.package)
def test_each_package_provides_its_tools(row):
    for tool in row.tools:
        path = where(tool)
        assert path, f"{row.package} (line {row.line}): {tool} is not on this machine after setup"
        owner = dpkg_owner(path)
        assert owner in {row.package} | depends(row.package), \
            f"{row.package} (line {row.line}): {path} belongs to {owner}, not to it or its dependencies"


@needs_dpkg
@pytest.mark.parametrize("row", [r for r in ROWS if r.how == "base"], ids=lambda r: r.package)
def test_base_packages_are_in_a_minimal_debian(row):
    """debootstrap --variant=minbase installs the packages of priority required."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", row.package],
                         capture_output=True, text=True).stdout
    assert out == "required", f"{row.package} is of priority {out or 'unknown'}: mark it install"
