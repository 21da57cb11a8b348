"""The run's end: its status email (exactly one per outcome), old exports out of the landing
zone, and the customer's lease given back."""

from __future__ import annotations

import logging

from .. import run_notes, runs
from ..config import CustomerConfig
from ..runs import RunStatus
from ..services import Sender, Services
from .begin import PAUSED
from .plan import Ending, Plan

log = logging.getLogger(__name__)

AS_PLANNED = Ending()  # the run ended the way its plan said


def notify(
    conn,
    plan: Plan | None,
    config: CustomerConfig,
    sender: Sender,
    ending: Ending = AS_PLANNED,
    kind: str = "import",
) -> dict:
    """Build the status email and send it; a run's email for one outcome goes out once,
    however often this is called. ``plan`` is None for a run refused before it began."""
    from ..report.build import build

    run = runs.summary(conn, plan.run_id) if plan and plan.run_id else None
    report = build(
        conn,
        config,
        run,
        plan=plan.as_dict() if plan else {"kind": kind},
        refusal=ending.refusal,
        failed=ending.failed,
    )
    if run is not None and report.outcome in (run.get("emails") or []):
        return {
            "outcome": report.outcome,
            "subject": report.subject,
            "headline": report.headline,
            "sent": None,
        }
    where = sender.send(report)
    if run is not None:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE sis.runs SET emails = emails || %s::jsonb WHERE id = %s",
                (f'["{report.outcome}"]', run["id"]),
            )
    return {
        "outcome": report.outcome,
        "subject": report.subject,
        "headline": report.headline,
        "sent": where,
    }


def finish(
    conn, plan: Plan, config: CustomerConfig, services: Services, ending: Ending = AS_PLANNED
) -> dict:
    """End the run: its status email (unless it waits at the filter: the HELD email said so
    already) and the lease given back. Returns the run's summary with the outcome."""
    run = runs.summary(conn, plan.run_id) if plan.run_id else None
    waiting = (
        run is not None
        and run["status"] == RunStatus.HELD
        and not (ending.refusal or ending.failed)
    )
    try:
        email = None if waiting else notify(conn, plan, config, services.sender, ending)
    finally:  # an email that cannot be sent never keeps the customer locked
        if plan.outcome != PAUSED:
            _prune_landing(conn, plan, config)
            runs.release(conn, plan.customer, plan.holder)
    if email is None:  # it waits at the filter: its HELD email went out when it was held
        email = plan.held_email or {"outcome": "held", "subject": None, "sent": None}
    result = (
        dict(run)
        if run
        else {
            "id": None,
            "customer": plan.customer,
            "status": plan.outcome or ("failed" if ending.failed else "refused"),
        }
    )
    result = _ended(result, plan, ending, email)
    result["note"] = run_notes.held(run, config) if waiting and run else run_notes.final(result)
    return result


def finish_without_plan(
    conn, customer: str, kind: str, config: CustomerConfig, services: Services, ending: Ending
) -> dict:
    """The end of a run that stopped before it had a plan (refused, or failed, at its begin):
    its email says why; nothing was held, so nothing is given back."""
    email = notify(conn, None, config, services.sender, ending, kind=kind)
    status = "failed" if ending.failed else "refused"
    result = _ended({"id": None, "customer": customer, "status": status}, None, ending, email)
    result["note"] = run_notes.final(result)
    return result


def _ended(result: dict, plan: Plan | None, ending: Ending, email: dict) -> dict:
    result.update(
        calendar=plan.calendar if plan else None,
        refusal=ending.refusal,
        failed=ending.failed,
        finished=plan.finished if plan else [],
        email=email,
        outcome=email["outcome"],
    )
    return result


def _prune_landing(conn, plan: Plan, config: CustomerConfig) -> None:
    """Exports older than the customer's ``landing_days`` leave the landing zone; the file of
    this run and of the last committed run always stay."""
    from ..sources.landing import prune

    with conn.cursor() as cur:
        cur.execute(
            "SELECT file_name FROM sis.runs WHERE customer = %s AND (id = %s OR id ="
            " (SELECT max(id) FROM sis.runs WHERE customer = %s AND status = %s))",
            (plan.customer, plan.run_id, plan.customer, str(RunStatus.COMMITTED)),
        )
        keep = {row[0] for row in cur.fetchall()}
    gone = prune(plan.customer, config.landing_days, keep)
    if gone:
        log.info(
            "%s: %s files older than %g days left the landing zone",
            plan.customer,
            len(gone),
            config.landing_days,
        )
