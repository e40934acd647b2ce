"""Grafana dashboards generated from program manifests (see docs/dashboards.md).

generator: pure, ProgramView in, dashboard JSON out. model: ProgramView from a ProgramPlan.
The command that builds the programs and writes the files is bpfleet/commands/dashboards.py.
"""
from orchestrator.dashboards.generator import (DATASOURCE_UID, generate, overview, program_dashboard, render)
from orchestrator.dashboards.model import KnobView, MetricView, ProgramView, from_plan  # noqa: F401
