"""The phase between the fetch and the apply: read and stage the file, (a rollover) check its
readiness, diff it and judge it. A held run sends its HELD email now, once, so that someone
knows a decision waits; a held run past its deadline is expired."""

from __future__ import annotations

from datetime import date

from .. import runs, school_year, staging
from ..config import CustomerConfig
from ..errors import BlockedByReadiness, FileRejected
from ..filter import Decision
from ..runs import RunStatus
from ..services import Services
from .decide import decide
from .finish import notify
from .judge import HELD_GRACE, compute_diff, judge
from .plan import Plan
from .stage import stage


def stage_and_judge(
    conn,
    plan: Plan,
    path: str,
    config: CustomerConfig,
    services: Services,
) -> Plan:
    """Read, stage, diff and judge the file. A held run sends its HELD email now (once), so
    someone knows that a decision waits; a held run past its deadline is expired."""
    from ..sources import landing

    now = services.clock()
    with landing.local_copy(path) as local:
        run = stage(conn, plan, local, config, recorded_as=path)
    if run["status"] == RunStatus.STAGED and plan.rollover:
        run = check_readiness(conn, plan, run, config)
    if run["status"] == RunStatus.STAGED:
        run = compute_diff(conn, plan, run["id"])
    if run["status"] == RunStatus.DIFFED:
        run = judge(conn, plan, run["id"], config, now=now)
    if run["status"] == RunStatus.HELD and run["decision"] is None:
        if run["deadline"] and now >= run["deadline"]:
            run = decide(
                conn,
                run["id"],
                Decision.EXPIRED,
                by=None,
                reason="no answer before the deadline",
                via="deadline",
            )
        else:
            # the holder keeps the customer until the decision (or the deadline)
            with conn, conn.cursor() as cur:
                runs.guard(cur, plan.customer, plan.holder, until=run["deadline"] + HELD_GRACE)
            plan.run_id = run["id"]
            plan.held_email = notify(conn, plan, config, services.sender)
    if plan.dry_run and run["status"] in (RunStatus.DIFFED, RunStatus.HELD):
        with conn, conn.cursor() as cur:  # nothing of a dry run is ever resumed
            runs.guard(cur, plan.customer, plan.holder)
            staging.drop(cur, run["id"])
            runs.update(cur, run["id"], status=RunStatus.DRY_RUN)
    plan.run_id = run["id"]
    plan.status = runs.get(conn, run["id"])["status"]
    if plan.status == RunStatus.REJECTED:
        fatal = run["fatal"] or {}
        where = f"line {fatal['line']}: " if fatal.get("line") else ""
        raise FileRejected(f"{run['file_name']} was rejected whole: {where}{fatal.get('reason')}")
    return plan


def check_readiness(conn, plan: Plan, run: dict, config: CustomerConfig) -> dict:
    """A rollover's readiness checks, against the file it staged: blocking findings stop it
    (nothing diffed or applied, the school year not switched) unless the operator overrode
    them in the form; a dry run only reports them."""
    from .. import readiness

    assert plan.school_year is not None  # a rollover's plan always names its year
    with conn, conn.cursor() as cur:
        findings = readiness.check(
            cur,
            config,
            school_year.SchoolYear.from_dict(plan.school_year),
            people=readiness.staged_people(cur, run["id"], plan.customer),
            on=date.fromisoformat(plan.day),
        )
    plan.readiness = {**findings.summary(), "overridden": bool(plan.override and findings.blocking)}
    if not findings.blocking or plan.override or plan.dry_run:
        return run
    with conn, conn.cursor() as cur:
        runs.guard(cur, plan.customer, plan.holder)
        staging.drop(cur, run["id"])
        runs.update(cur, run["id"], status=RunStatus.ABORTED, plan=plan.as_dict())
    plan.run_id, plan.status = run["id"], RunStatus.ABORTED
    raise BlockedByReadiness(
        f"rollover into {plan.school_year['label']} stopped by blocking readiness "
        "findings: "
        + ", ".join(f"{findings.title(name)} {n}" for name, n in findings.blocking.items())
    )
