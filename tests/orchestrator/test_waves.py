import pytest

from orchestrator.engine.waves import Host, parse_step, plan_waves


def fleet(spec: dict[str, int]) -> list[Host]:
    return [Host(f"{k}-{i:02d}", k) for k, n in spec.items() for i in range(n)]


def test_canary_is_one_host_per_kernel_build():
    waves = plan_waves(fleet({"6.1": 5, "6.18": 15}))
    assert waves[0].kind == "canary"
    assert waves[0].hosts == ("6.1-00", "6.18-00")


def test_default_steps_are_cumulative_fractions_of_the_fleet():
    waves = plan_waves(fleet({"a": 20}))
    sizes = [len(w.hosts) for w in waves]
    # canary 1, then up to 1 host (already there), 10% = 2, 50% = 10, 100% = 20
    assert sizes == [1, 1, 8, 10]
    assert sum(sizes) == 20


def test_every_host_exactly_once_and_in_order():
    hosts = fleet({"a": 7, "b": 3, "c": 1})
    waves = plan_waves(hosts)
    flat = [h for w in waves for h in w.hosts]
    assert sorted(flat) == sorted(h.name for h in hosts)
    assert len(flat) == len(set(flat))
    assert [w.index for w in waves] == list(range(len(waves)))


def test_waves_interleave_kernel_builds():
    waves = plan_waves(fleet({"a": 10, "b": 10}), steps=("50%", "100%"), canary=False)
    first = waves[0].hosts
    assert {h.split("-")[0] for h in first} == {"a", "b"}


def test_steps_short_of_100_percent_still_finish():
    waves = plan_waves(fleet({"a": 10}), steps=("1", "20%"))
    assert sum(len(w.hosts) for w in waves) == 10


def test_small_fleets():
    assert plan_waves([]) == []
    (only,) = plan_waves(fleet({"a": 1}))
    assert only.kind == "canary" and only.hosts == ("a-00",)


@pytest.mark.parametrize("step, fleet_size, expected", [
    ("1", 10, 1), ("3", 10, 3), ("10%", 10, 1), ("10%", 25, 3), ("100%", 7, 7), ("50", 7, 7),
])
def test_parse_step(step, fleet_size, expected):
    assert parse_step(step, fleet_size) == expected


@pytest.mark.parametrize("step", ["0", "-1", "0%", "150%", "x", "%", ""])
def test_parse_step_rejects_nonsense(step):
    with pytest.raises(ValueError, match="wave step"):
        parse_step(step, 10)
