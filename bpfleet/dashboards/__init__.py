"""Grafana dashboards generated from program manifests (see docs/dashboards.md).

generator: pure, ProgramView in, dashboard JSON out. model: ProgramView from a ProgramPlan.
The command that builds the programs and writes the files is bpfleet/commands/dashboards.py.
"""
from bpfleet.dashboards.generator import (DATASOURCE_UID, generate, overview,  # noqa: F401
                                          program_dashboard, render)
from bpfleet.dashboards.model import KnobView, MetricView, ProgramView, from_plan  # noqa: F401
