"""The fleet: every customer's row (the operations page's and the digest's) in each state an
operator must tell apart, from one query."""

from datetime import UTC, date, datetime, timedelta

from sisflow import digest, fleet

from tests.factory import lenient, run_once, write
from tests.undo.test_undo import two_schools

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # a Tuesday in the school year 2025-2026
DAY = date(2025, 9, 1)


def customer(name: str, **settings):
    return lenient(name, name=f"{name.title()} kommune", **settings)


def imported(conn, tmp_path, config, text=None, name="a.xml", **kw):
    path = write(tmp_path, text or two_schools(), f"{config.id}-{name}")
    return run_once(conn, config.id, path, config=config, on=DAY, **kw)


def aged(conn, run_id: int, days: float) -> None:
    """The run as if it came ``days`` before NOW."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE sis.runs SET created_at = %s WHERE id = %s",
            (NOW - timedelta(days=days), run_id),
        )


def test_each_state_is_told_apart(conn, tmp_path):
    fine = customer("fine", sis_vendor="IST Extens")
    held = customer("held", filter={"default": {"person": {"delete": {"count": 1}}}})
    paused = customer("paused", pause=[{"start": "2026-03-01", "end": "2026-03-20"}])
    quiet = customer("quiet")
    ready = customer("ready")
    never = customer("never")
    for config in (fine, held, paused, quiet, ready):
        aged(conn, imported(conn, tmp_path, config)["id"], 1)
    held_run = imported(conn, tmp_path, held, two_schools(pupils_a=1), "b.xml")
    assert held_run["status"] == "held"
    aged(conn, imported(conn, tmp_path, quiet)["id"], 0)  # the same file: not a new export
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE sis.runs SET created_at = %s WHERE customer = 'quiet' AND status = 'committed'",
            (NOW - timedelta(days=8),),
        )
        cur.execute(
            "INSERT INTO sis.readiness_checks (customer, checked_at, school_year, blocking,"
            " counts) VALUES ('ready', %s, '2026-2027', '{\"duplicates\": 2}', '{}')",
            (NOW - timedelta(hours=3),),
        )
    configs = [fine, held, paused, quiet, ready, never]
    rows = {r.customer: r for r in fleet.rows(conn, configs, NOW)}
    assert rows["fine"].flags == [] and rows["fine"].last_run["outcome"] == "applied"
    assert rows["fine"].vendor == "IST Extens" and rows["fine"].mode == "normal"
    assert rows["held"].flags == ["held"]
    assert rows["held"].held["id"] == held_run["id"]
    assert rows["held"].held["trips"] == ["person delete"]
    assert rows["paused"].flags == ["paused"] and rows["paused"].until == "2026-03-20"
    # eight days back, a Monday: six school days since, the same file yesterday is no new one
    assert rows["quiet"].last_run["outcome"] == "nothing-changed"
    assert rows["quiet"].school_days_without_export == 6
    assert rows["quiet"].flags == ["missing"]
    assert rows["ready"].flags == ["readiness"] and rows["ready"].readiness["blocking"] == 2
    assert rows["never"].last_run is None and rows["never"].flags == []
    # a paused customer's silence is no missing export
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE sis.runs SET created_at = %s WHERE customer = 'paused'",
            (NOW - timedelta(days=20),),
        )
    (row,) = fleet.rows(conn, [paused], NOW)
    assert row.flags == ["paused"] and not row.missing_export


def test_the_rollover_is_due_from_its_earliest_date(conn, tmp_path):
    config = customer("summer")
    imported(conn, tmp_path, config)
    (before,) = fleet.rows(conn, [config], datetime(2026, 7, 31, 9, tzinfo=UTC))
    (after,) = fleet.rows(conn, [config], datetime(2026, 8, 3, 9, tzinfo=UTC))
    assert "rollover" not in before.flags and "rollover" in after.flags
    assert after.earliest_rollover == "2026-08-01"


def test_a_rollover_waiting_for_its_day_is_shown_with_that_day_on_the_page_and_in_the_digest(
    conn, tmp_path
):
    from sisflow.report.email import render
    from sisflow.web.pages import customers_page

    config = customer("early")
    imported(conn, tmp_path, config)
    waiting = {
        "early": {
            "dag_id": "sisflow_rollover__early",
            "run_id": "manual__1",
            "until": "2026-08-10",
            "school_year": "2026-2027",
        }
    }
    (plain,) = fleet.rows(conn, [config], NOW)
    (row,) = fleet.rows(conn, [config], NOW, waiting)
    assert "rollover" not in plain.flags  # March: not due, and nothing waits
    assert "rollover" in row.flags and row.rollover_waiting == waiting["early"]
    page = customers_page(conn, [config], now=NOW, waiting=waiting, airflow_base="http://af")
    assert "rollover into 2026-2027 waits until 2026-08-10" in page
    assert 'href="http://af/dags/sisflow_rollover__early/runs/manual__1"' in page
    _, text = render(digest.build([row], NOW))
    assert "the rollover into 2026-2027 waits until 2026-08-10" in text


def test_the_digest_lists_who_needs_a_person_first(conn, tmp_path, monkeypatch):
    monkeypatch.setenv("SISFLOW_OPS_RECIPIENTS", "drift@leverandor.test, vakt@leverandor.test")
    fine, quiet = customer("fine"), customer("quiet")
    held = customer("held", filter={"default": {"person": {"delete": {"count": 1}}}})
    for config in (fine, quiet, held):
        aged(conn, imported(conn, tmp_path, config)["id"], 1)
    imported(conn, tmp_path, held, two_schools(pupils_a=1), "b.xml")
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE sis.runs SET created_at = %s WHERE customer = 'quiet'",
            (NOW - timedelta(days=8),),
        )
    built = digest.build(fleet.rows(conn, [fine, quiet, held], NOW), NOW)
    assert built.recipients == ["drift@leverandor.test", "vakt@leverandor.test"]
    assert [(a["row"]["customer"], a["reasons"]) for a in built.attention] == [
        ("held", ["held by the filter"]),
        ("quiet", ["no new export"]),
    ]
    assert built.counts == {"applied": 1}
    assert built.subject == "[sisflow] 2026-03-10: 2 of 3 customers need a person"
