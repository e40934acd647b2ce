#!/usr/bin/env bash
# Set everything up, then run the whole test suite on the real kernel.
# Extra arguments go to pytest (e.g. -k upgrade, -x).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
bpfleet_setup_machine
cd "$BPFLEET_ROOT"
exec "$VENV/bin/python" -m pytest "$@"
