"""Shared by every test folder: tests/integration/harness.py (real exporters, registries, leak
checks) and tests/integration/prometheus_server.py are importable as `harness` and
`prometheus_server` from anywhere under tests/, tests/toml_strategies.py (hypothesis
strategies for TOML documents) as `toml_strategies`, and tests/mitkit.py (veth pair, scratch
cgroup: what the mitigations act on) as `mitkit`, tests/needs.py (skip a folder without root or
its tools) as `needs`."""
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for d in (TESTS / "integration", TESTS):
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))
