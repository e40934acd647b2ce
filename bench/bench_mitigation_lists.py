"""How long replacing a mitigation's list takes (the admin API's PUT /mitigations/<name>/lists/<list>),
by list size: xdp_denylist's deny_v4 LPM trie, loaded (not attached), written through the
exporter's own code (exporter.mitigations.manager.replace_list_map). Run as root from the repo root:

    .venv/bin/python bench/bench_mitigation_lists.py [--sizes 100,1000,10000]

Per size: fill from empty, replace with an identical list (no change: the cost of reading the
keys back), replace half of it. Prints milliseconds; nothing stays loaded.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import BUILTIN_PROGRAMS, Workspace, build_into, machine  # noqa: E402


def prefixes(n: int, offset: int = 0) -> list[str]:
    base = int(ipaddress.ip_address("10.0.0.0"))
    return [f"{ipaddress.ip_address(base + (i + offset) * 256)}/24" for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100,1000,10000")
    args = ap.parse_args()
    from core import manifest
    from exporter.libbpf import BpfObject
    from exporter.mitigations.manager import replace_list_map
    print(machine())
    with Workspace() as ws:
        art = build_into(ws.registry, BUILTIN_PROGRAMS / "xdp_denylist")
        spec = manifest.load(str(art.manifest_path))[0].mitigation.lists["deny_v4"]
        for n in (int(x) for x in args.sizes.split(",")):
            with BpfObject(str(art.object_path)) as obj:
                obj.load()
                fd, info = obj.map_fd(spec.map), obj.maps()[spec.map]
                row = []
                for what, entries in (("fill", prefixes(n)), ("same", prefixes(n)),
                                      ("half new", prefixes(n, n // 2))):
                    t0 = time.perf_counter()
                    r = replace_list_map(fd, info, spec, entries)
                    row.append(f"{what} {1000 * (time.perf_counter() - t0):8.1f} ms (+{r['added']} -{r['removed']})")
                print(f"{n:>6} prefixes: " + " | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
