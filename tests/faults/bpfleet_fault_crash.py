"""A test-only exporter plugin: makes the exporter process die (exit 70) when it is asked to load
one exact artifact, so that tests can prove what happens to a version that crashes the exporter
(the rollout e2e tests: stopped at the canary and rolled back; tests/hardening: nothing leaks).

Installed through the environment, never by bpfleet itself (exporter/daemon/process.py):

    PYTHONPATH=<this folder>  BPFLEET_EXPORTER_PLUGINS=bpfleet_fault_crash
    BPFLEET_FAULT_CRASH_ON_LOAD=NAME@VERSION
"""
from __future__ import annotations

import logging
import os

CRASH_ON_LOAD = "BPFLEET_FAULT_CRASH_ON_LOAD"
EXIT_CODE = 70          # EX_SOFTWARE: what a crash looks like to bpfleet-supervise and systemd
log = logging.getLogger("bpfleet.exporter")


def before_load(artifact) -> None:
    if os.environ.get(CRASH_ON_LOAD) == artifact.ref:
        log.critical("%s=%s: crashing on purpose (test fault plugin)", CRASH_ON_LOAD, artifact.ref)
        logging.shutdown()
        os._exit(EXIT_CODE)
