"""Where bpfleet's own files are: the built-in programs and the playbooks.

They ship as package data of `bpfleet_data` and are found through importlib.resources, so an
installed wheel (anywhere, any cwd) and a checkout (editable install, or PYTHONPATH) resolve
the same way. In the repository, bpfleet_data/programs and bpfleet_data/playbooks are symlinks
to the top-level programs/ and playbooks/ (which stay where the design card puts them); the
wheel build follows them and ships real files.

Every function is lazy: importing a module that names a built-in directory must not fail
where only the Python sources were copied (a VM running the exporter from PYTHONPATH).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

DATA_PACKAGE = "bpfleet_data"


class ResourceError(Exception):
    pass


def data_dir() -> Path:
    """The directory of the bpfleet_data package (a real directory: callers hand these paths
    to clang, ansible-runner and pip, which need files on disk, not a zip member)."""
    try:
        root = resources.files(DATA_PACKAGE)
    except ModuleNotFoundError as e:
        raise ResourceError(f"the {DATA_PACKAGE} package is not installed: bpfleet's built-in "
                            "programs and playbooks ship in it (reinstall bpfleet)") from e
    if not isinstance(root, Path):
        raise ResourceError(f"{DATA_PACKAGE} is not a directory on disk ({root!r}): install "
                            "bpfleet unzipped")
    return root


def programs_dir() -> Path:
    """The built-in programs: one NAME/ (NAME.bpf.c + manifest.toml) each, and include/."""
    return (data_dir() / "programs").resolve()   # a checkout: the real programs/, not the link


def include_dir() -> Path:
    """vmlinux.h and the shared BPF headers every program is compiled against."""
    return programs_dir() / "include"


def playbooks_dir() -> Path:
    """The Ansible playbooks, roles/ and library/ (the modules the role uses)."""
    return (data_dir() / "playbooks").resolve()


def checkout_root() -> Path | None:
    """The source checkout bpfleet runs from (editable install or PYTHONPATH), or None for an
    installed wheel. Only for what exists in a checkout alone: building a wheel from source,
    the repository's committed dashboards/."""
    try:
        root = data_dir().resolve().parent
    except ResourceError:
        return None
    return root if (root / "pyproject.toml").is_file() else None
