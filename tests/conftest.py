"""Shared by every test folder: tests/integration/harness.py (real exporters, registries, leak
checks) and tests/integration/prometheus_server.py are importable as `harness` and
`prometheus_server` from anywhere under tests/."""
import sys
from pathlib import Path

INTEGRATION = Path(__file__).resolve().parent / "integration"
if str(INTEGRATION) not in sys.path:
    sys.path.insert(0, str(INTEGRATION))
