"""The first phase: the run's date, calendar and school year; the refusals that need no lease
(a rollover too early, or into a wrong school year); the customer's lease; and the LMS apply
an earlier run left half-way."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from .. import apply as lms_apply
from .. import calendar, partitions, runs, school_year
from ..calendar import Mode
from ..config import CustomerConfig
from ..errors import RolloverTooEarly, WrongSchoolYear
from .plan import Holder, Kind, Plan, Request

log = logging.getLogger(__name__)

PAUSED = "paused"  # the outcome of a run the calendar stops before anything is fetched


def begin(
    conn, request: Request, holder: Holder, config: CustomerConfig, airflow: dict | None = None
) -> Plan:
    """:func:`prepare`, then :func:`take`: what the command line does in one go."""
    return take(conn, prepare(conn, request, holder, config, airflow), config)


def prepare(
    conn, request: Request, holder: Holder, config: CustomerConfig, airflow: dict | None = None
) -> Plan:
    """The run's plan, and the refusals that need no lease: nothing is held yet, so a
    rollover may wait for its day after this."""
    day = request.on or calendar.today()
    rollover = request.kind == Kind.ROLLOVER
    with conn, conn.cursor() as cur:
        year = school_year.stored(cur, request.customer)
    cal = calendar.state_on(config, day, active=year)
    plan = Plan(
        customer=request.customer,
        kind=str(request.kind),
        day=day.isoformat(),
        mode=str(cal.mode),
        dry_run=request.dry_run,
        holder=holder.id,
        description=holder.description,
        calendar={"date": day.isoformat(), **cal.as_dict()},
        airflow=airflow,
        override=request.override,
        accept_older=request.accept_older,
    )
    # before the first import there is no old school year to keep apart from a new one
    holds_back = rollover or year is not None
    if rollover:
        year = _rollover_year(config, year, request.school_year, day)
    plan.school_year = {
        **(year or school_year.containing(day, config)).as_dict(),
        "holds_back": holds_back,
    }
    if cal.mode == Mode.PAUSED:
        log.info("%s is paused until %s: nothing fetched or applied", plan.customer, cal.until)
        plan.outcome = PAUSED
    return plan


def take(conn, plan: Plan, config: CustomerConfig) -> Plan:
    """The customer's lease for the run, and the apply an earlier run left half-way."""
    if plan.outcome == PAUSED:
        return plan
    partitions.ensure(conn, plan.customer)
    runs.acquire(
        conn,
        plan.customer,
        plan.holder,
        plan.description,
        process=Holder.is_process(plan.holder),
    )
    if not plan.dry_run:
        plan.finished = _finish_pending_apply(conn, plan, config)
    return plan


def _rollover_year(
    config: CustomerConfig, active: school_year.SchoolYear | None, label: str | None, day: date
) -> school_year.SchoolYear:
    """The school year a rollover on ``day`` goes into: ``label``, by default the one after
    the active one (before any import, the one ``day`` falls in). Refused when it is not a
    later year, or when ``day`` is before the earliest date that year allows."""
    try:
        target = (
            school_year.of_label(label, config)
            if label
            else school_year.following(active, config)
            if active
            else school_year.containing(day, config)
        )
    except ValueError as err:
        raise WrongSchoolYear(str(err)) from None
    if active and target.start < active.start:
        raise WrongSchoolYear(f"{target.label} is before the active school year {active.label}")
    if active and target.start == active.start:
        raise WrongSchoolYear(
            f"{target.label} is the active school year already: a rollover goes into a later one"
        )
    active = active or school_year.containing(day, config)
    earliest = school_year.earliest_rollover(config, active, target)
    if day < earliest:
        raise RolloverTooEarly(
            f"rollover into {target.label} is allowed from {earliest}, not on {day}"
        )
    return target


def waits_until(plan: Plan, now: datetime | None = None) -> datetime | None:
    """A rollover for a later effective date waits until that day begins in the customer's
    time zone (the DAG defers until then, holding nothing); None when it may go on now."""
    start = datetime.combine(
        date.fromisoformat(plan.day), datetime.min.time(), tzinfo=calendar.OSLO
    )
    return start if start > (now or datetime.now(UTC)) else None


def _finish_pending_apply(conn, plan: Plan, config: CustomerConfig) -> list[dict]:
    """A run committed to the import database but not (fully) applied to the LMS is finished
    before anything else: the LMS must never skip a change set."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM sis.runs WHERE customer = %s AND status = 'committed'"
            " AND lms_applied_at IS NULL ORDER BY id",
            (plan.customer,),
        )
        pending = [row[0] for row in cur.fetchall()]
    finished = []
    for run_id in pending:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM sis.apply_steps WHERE run_id = %s", (run_id,))
            done_before = cur.fetchone()[0]
        log.info("run %s: finishing its LMS apply first (%s steps were done)", run_id, done_before)
        counts = lms_apply.apply_run(
            conn,
            run_id,
            mode=plan.mode,
            course_archiving=config.course_archiving,
            holder=plan.holder,
        )
        finished.append(
            {
                "run": run_id,
                "changes": sum(c["applied"] for c in counts.values()),
                "steps_left": len(counts) - done_before,
            }
        )
    return finished
