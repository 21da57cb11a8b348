"""The approval that is not asked twice: a decision stored before the task starts is taken as
the answer, in a real DAG run, and no Required Action is raised."""

from __future__ import annotations

from datetime import UTC, datetime


def test_an_approval_decided_already_raises_no_required_action_and_passes_the_answer_on(
    airflow_db,
):
    from airflow.models.hitl import HITLDetail
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
    from airflow.utils.session import create_session
    from sisflow import pipeline
    from sisflow.airflow_api import OPEN, REJECT
    from sisflow_operators import ApprovalUnlessDecided

    stored = {
        "decision": "opened",
        "decided_by": "kari",
        "decided_at": datetime(2026, 8, 10, 7, 5, tzinfo=UTC),
        "reason": "checked with the school",
        "via": "cli",
    }
    seen = []
    with DAG("approval_decided_already", schedule=None) as dag:
        approval = ApprovalUnlessDecided(
            task_id="approval",
            decided=lambda ti: pipeline.as_answer(stored),
            subject="held",
            options=[OPEN, REJECT],
            defaults=[REJECT],
        )
        after = PythonOperator(
            task_id="apply",
            python_callable=lambda ti: seen.append(ti.xcom_pull(task_ids="approval")),
        )
        approval >> after
    serialized(dag)

    run = dag.test()

    assert run.state == "success"
    (answer,) = seen
    assert pipeline.from_approval(answer) == {
        "decision": "opened",
        "by": "kari",
        "via": "airflow",
        "reason": "checked with the school",
    }
    assert answer["decided_via"] == "cli"
    with create_session() as session:
        asked = session.query(HITLDetail).filter(HITLDetail.ti_id == approval_ti(run).id)
        assert asked.count() == 0  # nothing waited under Required Actions


def serialized(dag) -> None:
    """A DAG made in a test is in no bundle: written to the metadata database here, as the
    DAG processor writes the DAG folder's, so that ``dag.test`` can make a run of it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def approval_ti(run):
    return next(ti for ti in run.get_task_instances() if ti.task_id == "approval")
