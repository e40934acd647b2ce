"""Grafana dashboards generated from program manifests (see docs/dashboards.md).

model: ProgramView from a ProgramPlan. panels: names and panel builders; overview and program:
the dashboards; generator: pure, ProgramViews in, the files out.
The command that builds the programs and writes the files is bpfleet/commands/dashboards.py.
"""
from core.extras import require

require("dashboards", "Generating dashboards", "grafana_foundation_sdk")

from orchestrator.dashboards.generator import generate  # noqa: E402,F401
from orchestrator.dashboards.model import KnobView, MetricView, ProgramView, from_plan  # noqa: F401
from orchestrator.dashboards.overview import overview  # noqa: F401
from orchestrator.dashboards.panels import DATASOURCE_UID, render  # noqa: F401
from orchestrator.dashboards.program import program_dashboard  # noqa: F401
