"""Evaluating committed dashboards against a real Prometheus, shared by the host run
(test_dashboards_prometheus.py) and the lab-VM run (test_dashboards_vm.py).

Substitutions (what Grafana would do, with windows a short test can fill):
- `$__rate_interval` -> RATE_WINDOW (15s: > 4 scrape intervals, as Grafana's own minimum is; the
  data is younger than that, and rate() extrapolates over what is there);
- `$__range` -> RANGE_WINDOW (1m);
- `$job` -> the scrape job, `$instance` -> the exporter's host:port (as a regex),
  every label variable -> `.*` (Grafana's All, allValue ".*").
Template variable queries (`label_values(expr, label)`) go to /api/v1/label/<label>/values with
match[]=expr, which is what Grafana's Prometheus datasource does.

"Returns data" = the instant query result is not empty and has at least one finite value.
"""
from __future__ import annotations

import json
import math
import time
import tomllib
from pathlib import Path

from harness import PROGRAMS_DIR, deadline_poll
from prometheus_server import JOB

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("bpfleet-*.json"))
MIN_SCRAPES = 6
RATE_WINDOW = "15s"
RANGE_WINDOW = "1m"


def needs_vm(path: Path) -> bool:
    """A dashboard of a bcc-source program (needs kernel headers) or of a BPF-LSM program: CI
    hosts have neither, a lab VM has both (test_dashboards_vm.py evaluates these)."""
    manifest = PROGRAMS_DIR / path.stem.removeprefix("bpfleet-") / "manifest.toml"
    if not manifest.is_file():                 # bpfleet-overview: the exporter's own metrics
        return False
    m = tomllib.loads(manifest.read_text())
    return "bcc" in m or "lsm" in m.get("requires", {}).get("program_types", [])


HOST_DASHBOARDS = [p for p in DASHBOARDS if not needs_vm(p)]
VM_DASHBOARDS = [p for p in DASHBOARDS if needs_vm(p)]


def instant_or_none(prom, expr: str) -> float | None:
    """The first sample of an instant query, or None when it has none (not scraped yet)."""
    res = prom.query(expr)["result"]
    return float(res[0]["value"][1]) if res else None


def wait_scraped(prom, instance: str, timeout: float, healthy=lambda: None) -> None:
    """Prometheus holds >= MIN_SCRAPES samples of `up` for `instance`, and none failed.
    `healthy()` raises if what feeds the exporter broke meanwhile."""
    up = f'count_over_time(up{{job="{JOB}", instance="{instance}"}}[1m])'

    def enough():
        healthy()
        return (instant_or_none(prom, up) or 0) >= MIN_SCRAPES    # absent: no scrape yet
    try:
        deadline_poll(enough, timeout, interval=0.2, what=f">= {MIN_SCRAPES} scrapes of {instance}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{prom.log_tail()}") from None
    assert prom.value(f'min_over_time(up{{job="{JOB}", instance="{instance}"}}[1m])') == 1, \
        f"a scrape of {instance} failed"


def wait_increase(prom, counter: str, timeout: float) -> None:
    """`counter` grew inside the rate window (absent = not yet)."""
    seen = f'sum(increase({counter}[{RATE_WINDOW}]))'
    deadline_poll(lambda: (instant_or_none(prom, seen) or 0) > 0, timeout, interval=0.2,
                  what=f"{counter} growing, seen by Prometheus")


def substitute(expr: str, variables: dict[str, str]) -> str:
    out = expr.replace("$__rate_interval", RATE_WINDOW).replace("$__range", RANGE_WINDOW)
    for name in sorted(variables, key=len, reverse=True):        # $instance before $inst
        out = out.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    assert "$" not in out, f"unsubstituted variable in {out}"
    return out


def dashboard_variables(d: dict, instance: str) -> dict[str, str]:
    values = {}
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        values[v["name"]] = {"job": JOB, "instance": instance}.get(v["name"], ".*")
    return values


def finite(result: dict) -> bool:
    rows = result["result"]
    if result["resultType"] in ("scalar", "string"):
        rows = [{"value": rows}]
    return any(math.isfinite(float(r["value"][1])) for r in rows)


def check_panels(prom, path: Path, instance: str, may_be_empty: dict | None = None) -> None:
    """Every panel target of dashboard `path` returns data (except the (file, title) pairs in
    `may_be_empty`); one AssertionError listing every query that did not."""
    d = json.loads(path.read_text())
    variables = dashboard_variables(d, instance)
    checked, problems = 0, []
    for p in d["panels"]:
        for t in p.get("targets", []):
            expr = substitute(t["expr"], variables)
            where = f"{path.name}: panel {p['title']!r} {t['refId']}"
            try:
                res = prom.query(expr)
            except AssertionError as e:
                problems.append(f"{where}: query failed: {e}")
                continue
            checked += 1
            if not res["result"] or not finite(res):
                if (path.name, p["title"]) in (may_be_empty or {}):
                    continue
                problems.append(f"{where}: no data: {expr}\n    -> {json.dumps(res)[:300]}")
    assert checked, f"{path.name} has no queries"
    assert not problems, f"{len(problems)} of {checked} queries returned no data:\n" + "\n".join(problems)


def check_variables(prom, path: Path, instance: str) -> None:
    """label_values(expr, label) the way Grafana asks Prometheus: /api/v1/label/<label>/values."""
    d = json.loads(path.read_text())
    variables = dashboard_variables(d, instance)
    now = time.time()
    for v in d["templating"]["list"]:
        if v["type"] != "query":
            continue
        expr, label = label_values_query(v["query"])
        values = prom.api(f"label/{label}/values", **{"match[]": substitute(expr, variables)},
                          start=str(now - 300), end=str(now))
        assert values, f"{path.name}: variable {v['name']}: {v['query']} has no values"
        if v["name"] == "instance":
            assert instance in values, f"{path.name}: variable instance: {values}"


def label_values_query(query: str) -> tuple[str, str]:
    assert query.startswith("label_values(") and query.endswith(")"), query
    inner = query[len("label_values("):-1]
    expr, _, label = inner.rpartition(",")
    return expr.strip(), label.strip()
