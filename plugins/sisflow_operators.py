"""Operators for sisflow's DAGs, where Airflow's own do not fit as they are.

Airflow puts this folder on ``sys.path`` for the DAG processor, the workers and the triggerer
(``[core] plugins_folder``), so the DAG file imports from here by name.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.triggers.temporal import DateTimeTrigger


class WaitingPythonOperator(PythonOperator):
    """A PythonOperator whose callable may answer ``{"wait_until": <ISO moment>}``: the task
    then defers until that moment (a trigger waits; no worker slot, lock or lease is held) and
    calls the callable again, which now goes on. The rollover's ``begin`` uses it for an
    effective date after today: refusals come at once, the work on the day itself."""

    def execute(self, context):
        result = super().execute(context)
        if isinstance(result, dict) and result.get("wait_until"):
            self.defer(
                trigger=DateTimeTrigger(moment=datetime.fromisoformat(result["wait_until"])),
                method_name="execute_complete",
            )
        return result

    def execute_complete(self, context, event=None):
        return self.execute(context)
