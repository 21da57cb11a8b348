"""sisflow_digest: every morning, after the night's imports, one email to the operations team
(``SISFLOW_OPS_RECIPIENTS``): the customers that need a person (held runs and their
deadlines, breakdowns, missing exports, blocking readiness findings, a rollover due), then
counts for the rest. ``sisflow digest`` sends the same by hand."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG
from airflow.timetables.trigger import CronTriggerTimetable
from sisflow.airflow_tasks import send_digest

with DAG(
    dag_id="sisflow_digest",
    dag_display_name="sisflow: daily digest to operations",
    schedule=CronTriggerTimetable("30 7 * * *", timezone="Europe/Oslo"),
    max_active_runs=1,
    catchup=False,  # yesterday's digest is of no use today
    tags=["sisflow", "digest"],
    doc_md=__doc__,
    default_args={"owner": "integration-ops", "retries": 1, "retry_delay": timedelta(minutes=10)},
) as dag:
    PythonOperator(task_id="digest", python_callable=send_digest)
