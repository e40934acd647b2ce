import sqlite3

import pytest

from orchestrator.engine.journal import ROLLED_BACK, RUNNING, Journal


@pytest.fixture
def journal(tmp_path):
    j = Journal(str(tmp_path / "journal.db"))
    yield j
    j.close()


def test_rollout_lifecycle_is_recorded(journal):
    rid = journal.start("syscalls", "1.1.0", "ab" * 32, "inv.ini", [{"index": 0, "hosts": ["a"]}], {})
    r = journal.get(rid)
    assert (r.program, r.version, r.state) == ("syscalls", "1.1.0", RUNNING)
    journal.remember_previous(rid, "a", "1.0.0")
    journal.remember_previous(rid, "a", "1.1.0")  # the first answer stays
    journal.event(rid, "host_upgrading", host="a", wave=0)
    journal.event(rid, "host_upgraded", host="a", wave=0)
    journal.set_state(rid, ROLLED_BACK, "rolled back")
    r = journal.get(rid)
    assert r.previous == {"a": "1.0.0"} and r.state == ROLLED_BACK and r.result == "rolled back"
    assert journal.host_states(rid) == {"a": "upgraded"}
    assert [h.id for h in journal.history()] == [rid]


def test_touched_hosts_in_order(journal):
    rid = journal.start("p", "1.0.0", None, "i", [], {})
    for h in ["b", "a", "b", "c"]:
        journal.event(rid, "host_upgrading", host=h)
    assert journal.touched(rid) == ["b", "a", "c"]


def test_survives_reopen(tmp_path):
    path = str(tmp_path / "j.db")
    j = Journal(path)
    rid = j.start("p", "1.0.0", None, "i", [], {"steps": ["1"]})
    j.event(rid, "host_upgrading", host="x")
    j.db.close()  # as if the process died: no clean shutdown path
    j2 = Journal(path)
    assert j2.get(rid).options == {"steps": ["1"]} and j2.touched(rid) == ["x"]
    with pytest.raises(KeyError, match="no rollout"):
        j2.get("nope")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
