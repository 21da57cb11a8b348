"""Diff and filter: the change set of a staged run, and the filter's verdict on it. A run
over a threshold is held until a person decides, or its deadline passes."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from .. import diff, faults, identity, runs, undo
from .. import filter as filter_
from ..calendar import Mode
from ..config import CustomerConfig
from ..errors import NotDecidable, RunSuperseded
from ..runs import RunStatus
from .plan import Plan

log = logging.getLogger(__name__)

#: how long past a held run's deadline its lease lasts (the deadline sweep needs a moment)
HELD_GRACE = timedelta(hours=1)


def current(cur, run_id: int, *allowed: RunStatus) -> dict:
    """The run as it is now, read under the customer's lock: a run that a newer one
    superseded is never revived."""
    run = runs.row(cur, run_id)
    if run["status"] == RunStatus.SUPERSEDED:
        raise RunSuperseded(f"run {run_id} was superseded by a newer file: nothing more to do")
    if allowed and run["status"] not in allowed:
        raise NotDecidable(
            f"run {run_id} is {run['status']}, not {' or '.join(str(s) for s in allowed)}"
        )
    return run


def compute_diff(conn, plan: Plan, run_id: int) -> dict:
    """The change set of a staged run (once). After a delay-delete window (normal mode) the
    deletions it deferred join this change set, so the filter judges them."""
    with conn, conn.cursor() as cur:
        runs.guard(cur, plan.customer, plan.holder)
        run = current(cur, run_id)
        if run["status"] != RunStatus.STAGED:
            return runs.summary(conn, run_id)
        committed = runs.latest(cur, plan.customer, (RunStatus.COMMITTED,))
        cur.execute(
            "SELECT (SELECT count(*) FROM sis.persons WHERE customer = %(c)s),"
            " (SELECT count(*) FROM sis.groups WHERE customer = %(c)s),"
            " (SELECT count(*) FROM sis.memberships WHERE customer = %(c)s)",
            {"c": plan.customer},
        )
        base = dict(zip(("person", "group", "membership"), cur.fetchone(), strict=True))
        counts = diff.compute(
            cur, run_id, plan.customer, run["file_type"], release_deferred=plan.mode == Mode.NORMAL
        )
        pairs = identity.find_in_run(cur, run_id, plan.customer)
        if pairs and identity.rewrite(cur, run_id, plan.customer):
            counts = diff.counts(cur, run_id)
        runs.update(
            cur,
            run_id,
            status=RunStatus.DIFFED,
            counts=counts,
            base_counts=base,
            base_run=committed["id"] if committed else None,
        )
    log.info("run %s diffed: %s; identity changes %s", run_id, counts, pairs)
    faults.crash_point("diff:done")
    return runs.summary(conn, run_id)


def judge(
    conn, plan: Plan, run_id: int, config: CustomerConfig, now: datetime | None = None
) -> dict:
    """Put a diffed run through the filter (once). A run over a threshold is held: it waits
    for a person's decision until its deadline."""
    run = runs.summary(conn, run_id)
    if run["status"] != RunStatus.DIFFED or run["verdict"] is not None:
        return run
    name, verdict = verdict_of(conn, run, config, plan.rollover)
    now = now or datetime.now(UTC)
    deadline = now + timedelta(hours=config.filter.deadline_hours)
    with conn, conn.cursor() as cur:
        if verdict.passed or plan.dry_run:
            runs.guard(cur, plan.customer, plan.holder)
            current(cur, run_id, RunStatus.DIFFED)
            runs.update(cur, run_id, profile=name, verdict=verdict.as_dict())
        else:
            runs.guard(cur, plan.customer, plan.holder, until=deadline + HELD_GRACE)
            current(cur, run_id, RunStatus.DIFFED)
            runs.update(
                cur,
                run_id,
                profile=name,
                verdict=verdict.as_dict(),
                status=RunStatus.HELD,
                held_at=now,
                deadline=deadline,
            )
            log.warning("run %s held by the filter: %s rule(s) tripped", run_id, len(verdict.trips))
    faults.crash_point("judge:done")
    return runs.summary(conn, run_id)


def verdict_of(
    conn, run: dict, config: CustomerConfig, rollover: bool
) -> tuple[str, filter_.Verdict]:
    """The filter's verdict on the run's change set as it stands, with the identity changes
    that wait for a person; and the profile's name."""
    name, profile = filter_.profile_for(config, rollover)
    kept = None
    if run["file_type"] == "full":
        kept = {e: run["records"][e] - run["skipped"][e] for e in ("person", "group")}
    with conn.cursor() as cur:
        undecided = identity.undecided(cur, run["id"])
        redone = _redone(cur, run)
    return name, filter_.judge(
        run["counts"], run["base_counts"], kept, profile, name, undecided, redone
    )


def _redone(cur, run: dict) -> dict[str, int] | None:
    """Right after an undo, the changes of the run that the undone run had made too: an
    undone change does not come back without a person."""
    if run["base_run"] is None:
        return None
    cur.execute("SELECT undo_of FROM sis.runs WHERE id = %s", (run["base_run"],))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    return undo.redone(cur, run["id"], row[0])
