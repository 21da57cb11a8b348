"""sisflow_maintenance: every night, what is older than the retention period leaves the import
database, the landing zone and the outbox (see ``sisflow.retention``; ``sisflow maintenance``
does the same by hand), and every customer's LMS is checked for drift from its import
database, emailed where it drifted (``sisflow drift`` does the same by hand). The form's
``days`` overrides ``SISFLOW_RETENTION_DAYS`` (default 90) for one run."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param
from airflow.timetables.trigger import CronTriggerTimetable
from sisflow.airflow_tasks import drift_check, prune

with DAG(
    dag_id="sisflow_maintenance",
    schedule=CronTriggerTimetable("15 2 * * *", timezone="Europe/Oslo"),
    max_active_runs=1,
    catchup=False,  # one prune covers the nights it missed
    tags=["sisflow", "maintenance"],
    doc_md=__doc__,
    default_args={"owner": "integration-ops", "retries": 1, "retry_delay": timedelta(minutes=10)},
    params={
        "days": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="remove what is older than this many days (default: "
            "SISFLOW_RETENTION_DAYS, else 90)",
        )
    },
) as dag:
    PythonOperator(task_id="prune", python_callable=prune) >> PythonOperator(
        task_id="drift", python_callable=drift_check, trigger_rule="all_done"
    )
