#!/usr/bin/env bash
# Set everything up, then run the exporter with the built-in default config.
# Extra arguments go to `bpfleet exporter` (try --help).
set -euo pipefail
source "$(dirname "$0")/setup.sh"
bpfleet_setup_machine
build_registry
exec "$VENV/bin/bpfleet" exporter --registry "$BPFLEET_REGISTRY" "$@"
