"""The CLI layer (bpfleet/cli.py, bpfleet/commands/): every command is registered and reaches its
run function, the argument types shared by several commands, and a host's CLI (`bpfleet
exporter`) builds without the control machine's libraries."""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bpfleet import cli
from bpfleet.commands import args

# command line -> the module and function it runs
COMMANDS = {
    "programs list": "bpfleet.commands.programs.run_list",
    "programs verify x@1.0.0": "bpfleet.commands.programs.run_verify",
    "dashboards build --check": "bpfleet.commands.dashboards.run_build",
    "exporter --check": "bpfleet.commands.exporter.run",
    "top --once": "bpfleet.commands.top.run",
    "lab status": "bpfleet.commands.lab.run_status",
    "plan x@1.0.0 -i inv": "bpfleet.commands.fleet.run.run_plan",
    "rollout x@1.0.0 -i inv": "bpfleet.commands.fleet.run.run_rollout",
    "status -i inv": "bpfleet.commands.fleet.run.run_status",
    "rollback r1": "bpfleet.commands.fleet.run.run_rollback",
    "resume r1": "bpfleet.commands.fleet.run.run_resume",
    "history": "bpfleet.commands.fleet.run.run_history",
    "fleet install -i inv": "bpfleet.commands.fleet.run.run_install",
    "mitigate apply m -i inv": "bpfleet.commands.mitigate.run_apply",
    "mitigate promote m -i inv": "bpfleet.commands.mitigate.run_promote",
    "mitigate revoke m -i inv": "bpfleet.commands.mitigate.run_revoke",
    "mitigate status m -i inv": "bpfleet.commands.mitigate.run_status",
}


@pytest.mark.parametrize("line", sorted(COMMANDS))
def test_every_command_reaches_its_run_function(line):
    run = cli.parser().parse_args(line.split()).run
    assert f"{run.__module__}.{run.__name__}" == COMMANDS[line]   # guard() keeps both


def test_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "bpfleet.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    listed = {line.split()[0] for line in out.split("COMMAND\n", 1)[1].split("options:")[0].splitlines()
              if line.startswith("    ") and not line.startswith("      ")}
    assert listed == {line.split()[0] for line in COMMANDS}


def test_a_hosts_cli_needs_none_of_the_control_machines_libraries():
    """Hosts run `bpfleet exporter` from a venv with the exporter's dependencies only; building
    the parser registers every command, so no command may import these at parse time."""
    code = ("import sys\n"
            "for m in ('rich', 'ansible_runner', 'ansible', 'grafana_foundation_sdk', "
            "'prometheus_client', 'cryptography', 'opentelemetry', 'packaging'):\n"
            "    sys.modules[m] = None\n"
            "import bpfleet.cli\n"
            "assert bpfleet.cli.parser().parse_args(['exporter', '--check']).check\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("fn, text, want", [
    (args.count, "0", 0), (args.count, "12", 12),
    (args.seconds, "0", 0.0), (args.seconds, "2.5", 2.5),
    (args.steps, "1,10%,50%,100%", ("1", "10%", "50%", "100%")), (args.steps, " 2 , 5 ", ("2", "5")),
    (args.ref, "syscalls@1.1.0", ("syscalls", "1.1.0")),
])
def test_argument_types_accept(fn, text, want):
    assert fn(text) == want


@pytest.mark.parametrize("fn, text, message", [
    (args.count, "x", "not an integer: 'x'"), (args.count, "-1", "must be >= 0: '-1'"),
    (args.seconds, "soon", "not a number of seconds: 'soon'"), (args.seconds, "-0.5", "must be >= 0"),
    (args.steps, ",", "give at least one step"),
    (args.ref, "syscalls", "expected NAME@VERSION"), (args.ref, "syscalls@", "expected NAME@VERSION"),
    (args.ref, "@1.0.0", "expected NAME@VERSION"),
])
def test_argument_types_refuse(fn, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        fn(text)


@pytest.mark.parametrize("text, want", [
    ("min_ns=1000", ("min_ns", 1000)), ("mask=0x10", ("mask", 16)),
    ("verbose=true", ("verbose", True)), ("verbose=False", ("verbose", False)),
])
def test_knob_values(text, want):
    assert args.knob(text) == want


@pytest.mark.parametrize("text, message", [
    ("min_ns", "expected NAME=VALUE"), ("=3", "expected NAME=VALUE"),
    ("min_ns=lots", "the value must be an integer or true/false"),
])
def test_knob_refuses(text, message):
    with pytest.raises(ValueError, match=f"--knob '{text}': {message}"):
        args.knob(text)
