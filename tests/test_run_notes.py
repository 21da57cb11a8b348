"""A run's note as ops read it on a DAG's grid: the filter's trips in few words, the moment in
the customer's own time zone, never longer than Airflow keeps."""

from datetime import UTC, datetime

from sisflow import run_notes
from sisflow.config import CustomerConfig


def config() -> CustomerConfig:
    return CustomerConfig.model_validate({"id": "k"})


def trip(kind, entity="person", op="delete", actual=1087, limit=100, base=9000) -> dict:
    return dict(kind=kind, entity=entity, op=op, actual=actual, limit=limit, base=base)


def test_a_held_run_says_until_when_in_the_customers_time_and_what_tripped():
    run = {
        "id": 12,
        "deadline": datetime(2026, 12, 5, 6, 5, tzinfo=UTC),  # 07:05 in Oslo (winter)
        "verdict": {
            "trips": [
                trip("count"),
                trip("percent", entity="membership", actual=1200, limit=10, base=10000),
                trip("guard", entity="group", op="size", actual=40, limit=60, base=100),
                trip("identity", op="relink", actual=3),
                trip("undone", op="redo", actual=5),
            ]
        },
    }
    assert run_notes.held(run, config()) == (
        "run 12: held until 5 Dec 07:05 (Oslo): person delete 1,087 over 100;"
        " membership delete 1,200 (12.0%) over 10%; file holds 40% of the groups (at least"
        " 60%); person relink: 3 waiting for a person; person redo: 5 undone change(s) again"
    )


def test_moments_are_the_customers_wall_clock_with_the_zone_named():
    at = datetime(2026, 8, 9, 22, 0, tzinfo=UTC)
    assert run_notes.moment(at, config()) == "10 Aug 00:00 (Oslo)"
    assert run_notes.moment(datetime(2026, 12, 9, 22, 0, tzinfo=UTC), config()) == (
        "9 Dec 23:00 (Oslo)"  # winter time
    )
    waits = run_notes.waits(at, config(), "2026-2027")
    assert waits == "waits until 10 Aug 00:00 (Oslo): the rollover into 2026-2027"


def test_a_finished_run_is_its_emails_headline_on_one_line_within_airflows_limit():
    done = {"id": 7, "email": {"headline": "applied: 13,543 changes"}}
    assert run_notes.final(done) == "run 7: applied: 13,543 changes"
    refused = {"id": None, "email": {"headline": "REFUSED: a\nlong\n reason"}}
    assert run_notes.final(refused) == "REFUSED: a long reason"
    long = run_notes.final({"id": 1, "email": {"headline": "x " * 2000}})
    assert len(long) == run_notes.MOST and long.endswith("...")
