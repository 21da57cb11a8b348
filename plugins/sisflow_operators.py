"""Operators for sisflow's DAGs, where Airflow's own do not fit as they are.

Airflow puts this folder on ``sys.path`` for the DAG processor, the workers and the triggerer
(``[core] plugins_folder``), so the DAG file imports from here by name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from airflow.providers.standard.operators.hitl import HITLOperator
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


class ApprovalUnlessDecided(HITLOperator):
    """An approval that is not asked when the decision is made already (from the command
    line, say, before the task started, or when the task is cleared after an answer): it
    returns the stored decision, in the shape of an answer, instead of offering the buttons
    again. ``decided(context)`` gives that answer, or None to ask."""

    def __init__(self, *, decided: Callable[..., dict | None], **kwargs):
        super().__init__(**kwargs)
        self.decided = decided

    def execute(self, context):
        answer = self.decided(ti=context["ti"])
        if answer:
            who = (answer.get("responded_by_user") or {}).get("name") or "the deadline"
            self.log.info("decided already: %s by %s", answer["chosen_options"], who)
            return answer
        return super().execute(context)
