"""The filter gate without Airflow: held runs, decisions, and the deadline."""

from datetime import date, timedelta

import pytest
from sisflow import pipeline
from sisflow.config import CustomerConfig
from sisflow.errors import ContradictingDecision, NotDecidable

from tests.factory import enterprise, group, member, membership, person, run_once, write

STRICT = CustomerConfig.model_validate(
    {
        "id": "kommune",
        "filter": {
            "default": {"person": {"delete": {"count": 1}}, "min_share": 0},
            "deadline_hours": 24,
        },
    }
)
DAY = date(2025, 9, 1)


def school(*pupils):
    return enterprise(
        *(person(p) for p in pupils), group("5A"), membership("5A", *(member(p) for p in pupils))
    )


def a_plan(conn):
    request = pipeline.Request("kommune", on=DAY)
    return pipeline.begin(conn, request, pipeline.Holder("test", "a test"), STRICT)


def lms_users(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT sync_key, trashed_at IS NOT NULL FROM lms.users"
            " WHERE site = 'kommune' ORDER BY 1"
        )
        return cur.fetchall()


@pytest.fixture
def held(conn, tmp_path):
    run_once(
        conn,
        "kommune",
        write(tmp_path, school("p1", "p2", "p3", "p4"), "a.xml"),
        config=STRICT,
        on=DAY,
    )
    path = write(tmp_path, school("p1", "p2"), "b.xml")  # two leave: over the limit of one
    result = run_once(conn, "kommune", path, config=STRICT, on=DAY)
    return result, path


def test_a_run_over_a_threshold_is_held_and_reaches_nothing(conn, held):
    result, _ = held
    assert result["status"] == "held"
    (trip,) = result["verdict"]["trips"]
    assert (trip["entity"], trip["op"], trip["actual"], trip["limit"]) == ("person", "delete", 2, 1)
    assert result["deadline"] - result["held_at"] == timedelta(hours=24)
    assert lms_users(conn) == [("p1", False), ("p2", False), ("p3", False), ("p4", False)]


def test_opened_the_same_command_goes_on_and_who_when_why_is_kept(conn, held):
    result, path = held
    pipeline.decide(
        conn, result["id"], "opened", by="kari", reason="confirmed by the school", via="cli"
    )
    again = run_once(conn, "kommune", path, config=STRICT, on=DAY)
    assert again["id"] == result["id"] and again["status"] == "committed"
    assert lms_users(conn) == [("p1", False), ("p2", False), ("p3", True), ("p4", True)]
    d = again["decision"]
    assert (d["decision"], d["decided_by"], d["reason"], d["via"]) == (
        "opened",
        "kari",
        "confirmed by the school",
        "cli",
    )


def test_rejected_the_run_is_aborted_and_the_lms_untouched(conn, held):
    result, path = held
    rejected = pipeline.decide(
        conn, result["id"], "rejected", by="kari", reason="wrong file", via="cli"
    )
    assert rejected["status"] == "aborted"
    with pytest.raises(ContradictingDecision, match="already rejected by kari via cli"):
        pipeline.decide(conn, result["id"], "opened", by="ola", reason="oops", via="airflow")
    again = pipeline.decide(conn, result["id"], "rejected", by="ola", reason="x", via="airflow")
    assert again["decision"]["decided_by"] == "kari"  # the same answer again: the first stands
    with pytest.raises(NotDecidable):
        pipeline.commit(conn, a_plan(conn), result["id"])
    assert all(not trashed for _, trashed in lms_users(conn))


def test_no_answer_before_the_deadline_aborts_the_run(conn, held):
    result, path = held
    minute = timedelta(minutes=1)
    early = run_once(conn, "kommune", path, config=STRICT, on=DAY, now=result["deadline"] - minute)
    assert early["status"] == "held" and early["id"] == result["id"]
    late = run_once(conn, "kommune", path, config=STRICT, on=DAY, now=result["deadline"])
    assert late["status"] == "aborted" and late["id"] == result["id"]
    assert late["outcome"] == "expired"
    assert (late["decision"]["decision"], late["decision"]["via"]) == ("expired", "deadline")
    assert all(not trashed for _, trashed in lms_users(conn))


def test_a_held_run_cannot_be_committed_unopened(conn, held):
    result, _ = held
    with pytest.raises(NotDecidable, match="held and was not passed or opened"):
        pipeline.commit(conn, a_plan(conn), result["id"])


def test_the_deadline_is_checked_when_the_same_file_comes_again(conn, held):
    result, path = held
    with conn, conn.cursor() as cur:  # a day and more has passed
        cur.execute(
            "UPDATE sis.runs SET deadline = now() - interval '1 minute' WHERE id = %s",
            (result["id"],),
        )
    again = run_once(conn, "kommune", path, config=STRICT, on=DAY)
    assert again["id"] == result["id"]
    assert again["status"] == "aborted" and again["decision"]["via"] == "deadline"
