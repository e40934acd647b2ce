"""`bpfleet plan|rollout|status|rollback|resume|history` and `bpfleet fleet install`: fleet
rollouts from the command line, through Ansible (docs/orchestrator.md).

parser.py    the arguments of every verb
run.py       the verbs, one run_* function each
common.py    what they and `bpfleet mitigate` share: journal, Ansible fleet, hosts, artifact,
             driving a rollout with progress, usage errors -> exit 2
tables.py    plan, status, history and install as tables (rich)
progress.py  a rollout as it happens: a live view, or JSON lines for CI
"""
from bpfleet.commands.fleet.parser import add_parser  # noqa: F401
