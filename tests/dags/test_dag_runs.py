"""Real runs of a customer's import DAG (dag.test) against a real Postgres.

The approval task parks the run until a response is recorded in the metadata database. The
tests answer it the way Airflow's REST handler does (the response is written, then the task is
resumed), or let Airflow's own scheduler sweep time it out, from a second thread.
"""

import logging
import threading
import time
import types

import psycopg2
import pytest
from sisflow.ims.generate import generate

from tests.dags.conftest import dagbag

LENIENT = "{person: {}, group: {}, membership: {}, min_share: 0}"


@pytest.fixture
def kommune(airflow_db, db_url, customers, tmp_path, monkeypatch):
    """A customer with a folder source; returns (write config, drop a school year)."""
    monkeypatch.setenv("SISFLOW_DATABASE_URL", db_url)
    drop = tmp_path / "drop"
    drop.mkdir()

    def configure(extra: str = "", filter_default: str = LENIENT, deadline_hours: float = 1):
        customers("kommune", f"source: {{kind: folder, path: {drop}}}\n"
                             f"filter: {{default: {filter_default}, rollover: {LENIENT},"
                             f" deadline_hours: {deadline_hours}}}\n{extra}")

    def export(year: int):
        for old in drop.glob("*.xml"):
            old.unlink()
        generate(drop / f"export-{year}.xml", seed=4, year=year, size="tiny")

    return configure, export


def emails() -> list:
    """The status emails in the outbox (no SendGrid connection here: the embedded default)."""
    import os
    from pathlib import Path

    outbox = Path(os.environ["SISFLOW_HOME"]) / "outbox" / "kommune"
    return sorted(outbox.glob("*.eml")) if outbox.exists() else []


def run_dag(date: str, dag_id: str = "sisflow_import__kommune"):
    """Run the DAG once; every run must leave exactly one status email."""
    before = len(emails())
    dag = dagbag().dags[dag_id]
    run = dag.test(run_conf={"date": date})
    assert len(emails()) == before + 1
    return run.state, {ti.task_id: ti.state for ti in run.get_task_instances()}


def last_subject() -> str:
    import email
    import email.policy

    newest = max(emails(), key=lambda p: p.stat().st_mtime_ns)
    return email.message_from_bytes(newest.read_bytes(), policy=email.policy.default)["Subject"]


def query(db_url, sql, *args):
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def trashed(db_url):
    return query(db_url, "SELECT count(*) FROM lms.users WHERE trashed_at IS NOT NULL")[0][0]


def when_asked(action):
    """Run ``action(ti, session)`` in a thread once the approval task waits for input.

    Returns the list the thread puts its error in; if the action fails, the approval task is
    failed so that dag.test() ends instead of waiting for ever."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    errors = []

    def waiting(session):
        return session.scalar(
            select(TaskInstance)
            .where(TaskInstance.task_id == "approval",
                   TaskInstance.state == TaskInstanceState.AWAITING_INPUT)
            .options(joinedload(TaskInstance.hitl_detail)))

    def wait_and_act():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with create_session() as session:
                    ti = waiting(session)
                    if ti is not None and ti.hitl_detail is not None:
                        action(ti, session)
                        return
            except Exception as err:  # noqa: BLE001 (reported by the test)
                errors.append(err)
                with create_session() as session:
                    ti = waiting(session)
                    if ti is not None:
                        ti.state = TaskInstanceState.FAILED
                return
            time.sleep(0.3)
        errors.append(TimeoutError("the approval task never waited for input"))

    threading.Thread(target=wait_and_act, daemon=True).start()
    return errors


def answer(choice: str, reason: str, user: str = "kari"):
    """What the HITL REST handler does with a person's answer."""
    from airflow.models.hitl import HITLUser
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk import timezone
    from airflow.triggers.base import TriggerEvent

    def act(ti, session):
        detail = ti.hitl_detail
        detail.responded_by = HITLUser(id=user, name=user)
        detail.responded_at = timezone.utcnow()
        detail.chosen_options = [choice]
        detail.params_input = {"reason": reason}
        session.add(detail)
        handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti,
                            session=session)

    return act


def deadline_passes(ti, session):
    """Wait out the response timeout, then let the scheduler's own sweep resolve the task."""
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.sdk import timezone

    while timezone.utcnow() <= ti.trigger_timeout:
        time.sleep(0.2)
    session.commit()
    SchedulerJobRunner.check_awaiting_input_timeouts(
        types.SimpleNamespace(log=logging.getLogger("sweep")))


def test_normal_run_applies_to_the_lms(kommune, db_url):
    configure, export = kommune
    configure()
    export(2025)
    state, tis = run_dag("2025-09-01")
    assert state == "success"
    assert tis["normal"] == "success" and tis["delay_delete"] == "skipped"
    assert tis["approval"] == "skipped" and tis["apply_removals"] == "success"
    (status, applied, airflow_run), = query(
        db_url, "SELECT status, lms_applied_at IS NOT NULL, airflow_run FROM sis.runs")
    assert (status, applied) == ("committed", True)
    assert airflow_run["dag_id"] == "sisflow_import__kommune"
    persons = query(db_url, "SELECT count(*) FROM sis.persons")[0][0]
    assert query(db_url, "SELECT count(*) FROM lms.users")[0][0] == persons
    assert ": applied:" in last_subject()


def test_paused_nothing_is_fetched_or_applied(kommune, db_url):
    configure, export = kommune
    configure("pause:\n  - {start: 2025-07-01, end: 2025-07-31}\n")
    export(2025)
    state, tis = run_dag("2025-07-15")
    assert state == "success"
    assert tis["paused"] == "success" and tis["fetch"] == "skipped"
    assert tis["report"] == "success"
    assert query(db_url, "SELECT count(*) FROM sis.runs") == [(0,)]
    assert query(db_url, "SELECT count(*) FROM lms.users") == [(0,)]
    assert "paused until 2025-07-31" in last_subject()


def test_delay_delete_holds_deletions_back_from_the_lms(kommune, db_url):
    configure, export = kommune
    configure("delay_delete:\n  - {start: 2026-06-20, end: 2026-08-14}\n")
    export(2025)
    assert run_dag("2025-09-01")[0] == "success"
    export(2026)  # the next school year: 10th graders leave
    state, tis = run_dag("2026-08-10")
    assert state == "success"
    assert tis["delay_delete"] == "success" and tis["normal"] == "skipped"
    assert trashed(db_url) == 0
    assert query(db_url, "SELECT count(*) > 0 FROM sis.deferred_deletions") == [(True,)]
    assert "deletions held back until 2026-08-14" in last_subject()


STRICT = "{person: {delete: {count: 1}}, min_share: 0}"


@pytest.fixture
def held(kommune, db_url):
    """A second school year that the strict filter holds (pupils leave)."""
    configure, export = kommune
    configure(filter_default=STRICT)
    export(2025)
    assert run_dag("2025-09-01")[0] == "success"
    export(2026)
    return db_url


def decision(db_url):
    return query(db_url, "SELECT decision, decided_by, reason, via FROM sis.filter_decisions")


def test_held_then_approved_goes_through(held):
    errors = when_asked(answer("Open the filter", "checked with the school"))
    state, tis = run_dag("2026-08-10")
    assert errors == []
    assert state == "success"
    assert tis["approval"] == "success" and tis["apply_removals"] == "success"
    assert decision(held) == [("opened", "kari", "checked with the school", "airflow")]
    assert trashed(held) > 0
    assert "applied after the filter was opened" in last_subject()


def test_held_then_rejected_touches_nothing(held):
    errors = when_asked(answer("Reject", "wrong school year"))
    state, tis = run_dag("2026-08-10")
    assert errors == []
    assert tis["decide"] == "success" and tis["apply"] == "skipped"
    assert tis["report"] == "success"
    assert decision(held) == [("rejected", "kari", "wrong school year", "airflow")]
    assert query(held, "SELECT status FROM sis.runs ORDER BY id DESC LIMIT 1") == [("aborted",)]
    assert trashed(held) == 0
    assert "the held import was rejected" in last_subject()


def test_no_answer_before_the_deadline_aborts(held, kommune):
    configure, _ = kommune
    configure(filter_default=STRICT, deadline_hours=0.0006)  # about two seconds
    errors = when_asked(deadline_passes)
    state, tis = run_dag("2026-08-10")
    assert errors == []
    assert tis["approval"] == "failed" and tis["decide"] == "success"
    assert tis["apply"] == "skipped" and tis["report"] == "success"
    assert state == "failed"  # the run shows that it was aborted
    assert decision(held) == [("expired", None, "no answer before the deadline", "deadline")]
    assert trashed(held) == 0
    assert "no decision before the deadline" in last_subject()
