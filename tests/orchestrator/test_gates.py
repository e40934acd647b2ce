from orchestrator.engine.gates import FAIL, INCONCLUSIVE, PASS, Observation, judge


def good(host, **kw):
    base = dict(reachable=True, healthy=True, version="1.1.0", state="attached",
                run_time_ns=60_000_000, run_count=1_000_000, load_per_cpu=0.5)
    return Observation(host, **(base | kw))


def names(v):
    return {c.name: c.result for c in v.checks}


def test_all_good_passes():
    v = judge([good("a"), good("b")], [good("z", version="1.0.0")], "1.1.0", budget_ns=100)
    assert v.result == PASS, v.as_dict()


def test_unreachable_host_fails():
    v = judge([good("a"), Observation("b", reachable=False)], [good("z")], "1.1.0", 100)
    assert v.result == FAIL and names(v)["exporter healthy"] == FAIL


def test_wrong_version_or_failed_state_fails():
    v = judge([good("a", version="1.0.0")], [good("z")], "1.1.0", 100)
    assert names(v)["attached"] == FAIL
    v = judge([good("a", state="failed", error="verifier said no")], [good("z")], "1.1.0", 100)
    assert v.result == FAIL and names(v)["no load errors"] == FAIL


def test_over_budget_fails_with_the_host_named():
    v = judge([good("a"), good("b", run_time_ns=500_000_000)], [good("z")], "1.1.0", 100)
    cost = next(c for c in v.checks if c.name == "cost within budget")
    assert cost.result == FAIL and cost.hosts == ("b",)


def test_too_few_events_is_inconclusive_never_pass():
    v = judge([good("a", run_count=10, run_time_ns=100)], [good("z")], "1.1.0", 100)
    assert v.result == INCONCLUSIVE


def test_no_budget_means_cost_passes():
    v = judge([good("a", run_count=0)], [good("z")], "1.1.0", None)
    assert names(v)["cost within budget"] == PASS


def test_health_worse_than_baseline_fails_and_missing_baseline_is_inconclusive():
    v = judge([good("a", load_per_cpu=3.0)], [good("z", load_per_cpu=0.5)], "1.1.0", 100)
    assert names(v)["host health vs baseline"] == FAIL
    v = judge([good("a")], [], "1.1.0", 100)
    assert v.result == INCONCLUSIVE and names(v)["host health vs baseline"] == INCONCLUSIVE


def test_fail_beats_inconclusive():
    v = judge([good("a", run_count=1), Observation("b", reachable=False)], [good("z")], "1.1.0", 100)
    assert v.result == FAIL
