"""The DAG module as Airflow parses it: ids, schedules, settings, broken files, no I/O."""

import psycopg2
import pytest

from tests.dags.conftest import dagbag

GOOD = "name: Nordby kommune\nschedule: {cron: '15 5 * * 1-5'}\nsource: {kind: folder, path: /x}\n"


def test_every_customer_gets_an_import_a_rollover_a_readiness_and_an_undo_dag(customers):
    customers("nordby", GOOD)
    customers("sorby", "sis_vendor: IST Extens\n")
    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dags) == {
        f"sisflow_{kind}__{customer}"
        for customer in ("nordby", "sorby")
        for kind in ("import", "rollover", "readiness", "undo")
    } | {"sisflow_maintenance", "sisflow_digest"}
    dag = bag.dags["sisflow_import__nordby"]
    # the UI lists customers by name; the id stays the DAG's key
    assert dag.dag_display_name == "Nordby kommune: import"
    assert bag.dags["sisflow_undo__sorby"].dag_display_name == "sorby: undo"
    assert dag.timetable.summary == "15 5 * * 1-5"
    assert str(dag.timetable._timezone.name) == "Europe/Oslo"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert {"sisflow", "import", "nordby"} <= set(dag.tags)
    assert {t.owner for t in dag.tasks} == {"integration-ops"}
    assert "Filter thresholds" in dag.doc_md and "person | delete | 200 | 5%" in dag.doc_md
    assert type(bag.dags["sisflow_rollover__nordby"].timetable).__name__ == "NullTimetable"
    assert set(dag.params) == {"dry_run", "file", "date", "accept_older"}
    # the rollover's own form: the new school year, the effective date, the override
    assert set(bag.dags["sisflow_rollover__nordby"].params) == {
        "school_year",
        "effective_date",
        "dry_run",
        "override",
        "file",
    }
    undo = bag.dags["sisflow_undo__nordby"]
    assert type(undo.timetable).__name__ == "NullTimetable"
    assert [t.task_id for t in undo.tasks] == ["preview", "approval", "undo"]
    assert set(undo.params) == {"run", "school", "dry_run", "force", "reason"}


def test_the_readiness_dag_runs_on_the_customers_readiness_days(customers):
    customers("nordby", GOOD + "readiness_on: [2027-05-03, 2027-06-01]\n")
    customers("sorby", "sis_vendor: IST Extens\n")
    bag = dagbag()
    dag = bag.dags["sisflow_readiness__nordby"]
    assert [t.task_id for t in dag.topological_sort()] == ["check", "approval", "attach"]
    assert [d.isoformat() for d in dag.timetable.event_dates] == [
        "2027-05-03T06:00:00+02:00",
        "2027-06-01T06:00:00+02:00",
    ]
    assert dag.get_task("approval").defaults == ["Do not attach"]
    assert type(bag.dags["sisflow_readiness__sorby"].timetable).__name__ == "NullTimetable"


def test_the_maintenance_dag_runs_every_night(customers):
    dag = dagbag().dags["sisflow_maintenance"]
    assert dag.timetable.summary == "15 2 * * *"
    assert [t.task_id for t in dag.tasks] == ["prune", "drift"]
    assert dict(dag.params)["days"] is None  # the default: SISFLOW_RETENTION_DAYS, else 90


def test_a_broken_customer_file_never_stops_the_others(customers):
    customers("nordby", GOOD)
    customers("broken", "inactive_months: 7\n")
    bag = dagbag()
    assert bag.import_errors == {}
    assert "sisflow_import__nordby" in bag.dags
    broken = bag.dags["sisflow_import__broken"]
    assert [t.task_id for t in broken.tasks] == ["invalid_configuration"]
    assert "inactive_months" in broken.doc_md and "config-error" in broken.tags


def test_the_deployments_airflow_settings_reach_every_dag_but_catchup(customers, monkeypatch):
    customers("nordby", GOOD)
    customers("sorby", GOOD.replace("/x", "/y"))
    monkeypatch.setenv("AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG", "3")
    monkeypatch.setenv("AIRFLOW__CORE__MAX_CONSECUTIVE_FAILED_DAG_RUNS_PER_DAG", "5")
    # a deployment that catches up by default: a missed night's import is still not replayed
    monkeypatch.setenv("AIRFLOW__SCHEDULER__CATCHUP_BY_DEFAULT", "True")
    bag = dagbag()
    assert bag.import_errors == {}
    dags = [d for i, d in bag.dags.items() if i.startswith("sisflow_") and "__" in i]
    assert len(dags) == 8
    assert {(d.max_active_tasks, d.max_consecutive_failed_dag_runs, d.catchup) for d in dags} == {
        (3, 5, False)
    }


def test_parsing_touches_no_database(customers, monkeypatch):
    customers("nordby", GOOD)

    def refuse(*args, **kwargs):
        raise AssertionError("the DAG file connected to a database while parsed")

    monkeypatch.setattr(psycopg2, "connect", refuse)
    bag = dagbag()
    assert bag.import_errors == {} and "sisflow_import__nordby" in bag.dags


@pytest.mark.parametrize("dag_id", ["sisflow_import__nordby", "sisflow_rollover__nordby"])
def test_the_gate_is_a_human_in_the_loop_task_with_the_deadline(customers, dag_id):
    from airflow.providers.standard.operators.hitl import HITLOperator

    customers("nordby", GOOD + "filter: {deadline_hours: 6}\n")
    dag = dagbag().dags[dag_id]
    approval = dag.get_task("approval")
    assert isinstance(approval, HITLOperator)
    assert approval.response_timeout.total_seconds() == 6 * 3600


def test_a_worker_parses_only_the_dag_it_runs(customers, monkeypatch):
    customers("nordby", GOOD)
    customers("sorby", GOOD.replace("/x", "/y"))
    customers("broken", "inactive_months: 7\n")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "sisflow_import__sorby")
    # the other DAG files hold one fixed DAG each, cheap to build
    assert set(dagbag().dags) == {"sisflow_import__sorby", "sisflow_maintenance", "sisflow_digest"}


@pytest.mark.parametrize("kind", ["import", "rollover"])
def test_every_task_does_work_and_refusals_are_not_retried(customers, kind):
    customers("nordby", GOOD)
    dag = dagbag().dags[f"sisflow_{kind}__nordby"]
    assert len(dag.tasks) <= 8
    assert [t.task_id for t in dag.topological_sort()] == [
        "begin",
        "fetch",
        "stage_and_judge",
        "approval",
        "apply",
        "finish",
    ]
    assert not [t for t in dag.tasks if type(t).__name__ == "EmptyOperator"]
    # a refusal (too early, invalid customer, busy, a contradicting decision) fails or skips
    # its task at once (AirflowFailException); begin, approval and finish never retry
    assert {t.task_id: t.retries for t in dag.tasks if t.retries == 0} == {
        "begin": 0,
        "approval": 0,
        "finish": 0,
    }
    assert dag.get_task("finish").trigger_rule == "all_done"
    # at the deadline the approval resolves to Reject with no responder: not a failure
    assert dag.get_task("approval").defaults == ["Reject"]
