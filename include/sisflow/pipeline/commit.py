"""The apply: the run's change set committed to the import database (the customer's current
state moves forward), then applied to the LMS."""

from __future__ import annotations

import logging

from .. import apply as lms_apply
from .. import faults, identity, runs, school_year, staging, state
from .. import filter as filter_
from ..config import CustomerConfig
from ..errors import NotDecidable, RunSuperseded
from ..runs import RunStatus
from .judge import current
from .plan import Plan

log = logging.getLogger(__name__)


def commit(conn, plan: Plan, run_id: int) -> dict:
    """Move the customer's current state forward by the run's change set (once). Only a run
    that the filter passed, or that a person opened, and that is still the newest, is
    committed."""
    with conn, conn.cursor() as cur:
        runs.guard(cur, plan.customer, plan.holder)
        run = current(cur, run_id)
        if run["status"] == RunStatus.COMMITTED:
            return runs.summary(conn, run_id)
        decision = filter_.stored_decision(cur, run_id)
        opened = (
            run["status"] == RunStatus.HELD
            and decision
            and decision["decision"] == filter_.Decision.OPENED
        )
        passed = run["status"] == RunStatus.DIFFED and (run["verdict"] or {}).get("passed")
        if not (opened or passed):
            raise NotDecidable(
                f"run {run_id} is {run['status']} and was not passed or opened: it is not committed"
            )
        committed = runs.latest(cur, plan.customer, (RunStatus.COMMITTED,))
        if (committed["id"] if committed else None) != run["base_run"]:
            raise RunSuperseded(
                f"run {run_id} was diffed against run {run['base_run']}, but the current state"
                f" is now run {committed['id'] if committed else None}: stage the file again"
            )
        identity.rename_in_state(cur, run_id, plan.customer)
        state.apply_changes(cur, run_id, plan.customer, run["counts"], run["base_counts"])
        if plan.school_year:  # the first import sets it; a rollover switches it
            school_year.record(
                cur, plan.customer, school_year.SchoolYear.from_dict(plan.school_year), run_id
            )
        staging.drop(cur, run_id)
        runs.update(cur, run_id, status=RunStatus.COMMITTED)
    log.info("run %s committed", run_id)
    faults.crash_point("commit:done")
    return runs.summary(conn, run_id)


def apply(conn, plan: Plan, config: CustomerConfig) -> Plan:
    """Commit the run and apply it to the customer's LMS (resumes where a crash left it)."""
    assert plan.run_id is not None, "a run is applied after it was staged"
    run = commit(conn, plan, plan.run_id)
    if run["lms_applied_at"] is None:
        lms_apply.apply_run(
            conn,
            plan.run_id,
            mode=plan.mode,
            course_archiving=config.course_archiving,
            holder=plan.holder,
        )
    plan.status = RunStatus.COMMITTED
    return plan
