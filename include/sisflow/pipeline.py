"""The steps of an import as plain functions: what the command line and the DAG tasks call.

Each step takes small arguments (a customer id, a path, a run id), keeps its data in the
import database, returns a small dict, and is idempotent: calling it again after a crash or a
retry reaches the same end state.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import UTC, date, datetime, timedelta

from . import apply, calendar, diff, runs, staging, state
from . import config as config_module
from . import filter as filter_
from .config import CustomerConfig, load_customer
from .ims.reader import ImsReader
from .ims.records import FatalFileError

log = logging.getLogger(__name__)

CUSTOMER_ID = re.compile(config_module.CUSTOMER_ID)


def _check_customer(customer: str) -> None:
    if not CUSTOMER_ID.match(customer):
        raise ValueError(
            f"customer id {customer!r}: use lower-case letters, digits, '-' and '_' (max 63)"
        )


def _sha256(path: str) -> tuple[str, int]:
    """Checksum before reading: an unchanged file is then recognised without parsing it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), os.path.getsize(path)


def summary(conn, run_id: int) -> dict:
    run = runs.get(conn, run_id)
    keys = ("id", "customer", "status", "file_name", "file_size", "sha256", "datasource",
            "file_datetime", "file_type", "records", "skipped", "problem_counts", "fatal",
            "counts", "base_run", "same_as_run", "lms_applied_at", "lms_mode", "lms_counts",
            "base_counts", "profile", "verdict", "held_at", "deadline")
    result = {k: run[k] for k in keys}
    with conn.cursor() as cur:
        result["decision"] = filter_.stored_decision(cur, run_id)
    return result


def stage(conn, customer: str, path: str | os.PathLike, *, allow_unchanged: bool = True) -> dict:
    """Read and stage a file for a customer; returns the run summary.

    The same file as the customer's pending run resumes that run; the same file as the last
    committed run gives an ``unchanged`` run with no changes; anything else starts a new run
    and supersedes the pending one. A file rejected whole gives a ``rejected`` run with the
    reason, and nothing staged.
    """
    _check_customer(customer)
    path = os.fspath(path)
    sha256, size = _sha256(path)
    name = os.path.basename(path)
    with conn, conn.cursor() as cur:
        runs.lock_customer(cur, customer)
        last = runs.latest(cur, customer)
        if last and last["sha256"] == sha256 and last["status"] in ("staged", "diffed", "held"):
            log.info("run %s: same file as the pending run, resumed", last["id"])
            return summary(conn, last["id"])
        # a newer file replaces whatever was pending (held at the filter, say): only the
        # newest file may ever reach the current state
        cur.execute(
            "SELECT id FROM sis.runs WHERE customer = %s AND status = ANY(%s)",
            (customer, list(runs.PENDING)),
        )
        for (old,) in cur.fetchall():
            staging.drop(cur, old)
            runs.update(cur, old, status="superseded")
        committed = runs.latest(cur, customer, ("committed",))
        if allow_unchanged and committed and committed["sha256"] == sha256:
            run_id = runs.create(cur, customer, path, name, size, sha256, status="unchanged",
                                 same_as_run=committed["id"], base_run=committed["id"],
                                 counts=_no_changes())
            log.info("run %s: unchanged file (same checksum as run %s)", run_id, committed["id"])
            return summary(conn, run_id)
        run_id = runs.create(cur, customer, path, name, size, sha256)

    reader = ImsReader(path)
    try:
        with conn, conn.cursor() as cur:
            runs.lock_customer(cur, customer)
            staging.stage_records(cur, run_id, reader)
            result = reader.result
            if result.file.sha256 != sha256:
                raise RuntimeError(f"{path} changed while it was read")
            staging.store_problems(cur, run_id, result)
            skipped = dict(result.skipped)
            props = result.properties
            if props.type != "full":
                skipped["membership"] += staging.check_delta_references(cur, run_id, customer)
            runs.update(
                cur, run_id, status="staged", datasource=props.datasource,
                file_datetime=props.datetime, file_type=props.type, records=result.records,
                skipped=skipped, problem_counts=result.problem_counts,
            )
    except FatalFileError as err:  # the staging transaction was rolled back whole
        with conn, conn.cursor() as cur:
            staging.store_problems(cur, run_id, reader.result)
            runs.update(cur, run_id, status="rejected", fatal=reader.result.fatal.as_dict(),
                        problem_counts=reader.result.problem_counts)
        log.warning("run %s rejected: line %s: %s", run_id, err.line, err.reason)
    except Exception as err:
        with conn, conn.cursor() as cur:
            runs.update(cur, run_id, status="failed",
                        fatal={"line": None, "reason": f"{type(err).__name__}: {err}"})
        raise
    return summary(conn, run_id)


def compute_diff(conn, run_id: int, *, release_deferred: bool = True) -> dict:
    """Compute (or return the already computed) change set of a staged run."""
    run = runs.get(conn, run_id)
    if run["status"] != "staged":
        return summary(conn, run_id)
    with conn, conn.cursor() as cur:
        runs.lock_customer(cur, run["customer"])
        committed = runs.latest(cur, run["customer"], ("committed",))
        cur.execute(
            "SELECT (SELECT count(*) FROM sis.persons WHERE customer = %(c)s),"
            " (SELECT count(*) FROM sis.groups WHERE customer = %(c)s),"
            " (SELECT count(*) FROM sis.memberships WHERE customer = %(c)s)",
            {"c": run["customer"]},
        )
        base = dict(zip(("person", "group", "membership"), cur.fetchone(), strict=True))
        counts = diff.compute(cur, run_id, run["customer"], run["file_type"],
                              release_deferred=release_deferred)
        runs.update(cur, run_id, status="diffed", counts=counts, base_counts=base,
                    base_run=committed["id"] if committed else None)
    log.info("run %s diffed: %s", run_id, counts)
    return summary(conn, run_id)


def judge(conn, run_id: int, config: CustomerConfig, *, rollover: bool = False,
          now: datetime | None = None) -> dict:
    """Put a diffed run through the filter (once). A run over a threshold is held: it waits
    for a person's decision until its deadline."""
    run = runs.get(conn, run_id)
    if run["status"] != "diffed" or run["verdict"] is not None:
        return summary(conn, run_id)
    name = "rollover" if rollover else "default"
    profile = config.filter.rollover if rollover else config.filter.default
    kept = None
    if run["file_type"] == "full":
        kept = {e: run["records"][e] - run["skipped"][e] for e in ("person", "group")}
    verdict = filter_.judge(run["counts"], run["base_counts"], kept, profile, name)
    now = now or datetime.now(UTC)
    with conn, conn.cursor() as cur:
        if verdict.passed:
            runs.update(cur, run_id, profile=name, verdict=verdict.as_dict())
        else:
            runs.update(cur, run_id, profile=name, verdict=verdict.as_dict(), status="held",
                        held_at=now,
                        deadline=now + timedelta(hours=config.filter.deadline_hours))
            log.warning("run %s held by the filter: %s rule(s) tripped", run_id,
                        len(verdict.trips))
    return summary(conn, run_id)


def decide(conn, run_id: int, decision: str, *, by: str | None, reason: str | None,
           via: str) -> dict:
    """Open or reject a held run (the first decision stands); a rejected run is aborted."""
    if decision not in ("opened", "rejected", "expired"):
        raise ValueError(f"decision {decision!r}: opened, rejected or expired")
    run = runs.get(conn, run_id)
    if run["status"] != "held":
        raise RuntimeError(f"run {run_id} is {run['status']}: only a held run takes a decision")
    with conn, conn.cursor() as cur:
        runs.lock_customer(cur, run["customer"])
        stored = filter_.record_decision(cur, run_id, decision, by=by, reason=reason, via=via)
        if stored["decision"] != "opened":
            runs.update(cur, run_id, status="aborted")
    log.info("run %s: filter %s via %s", run_id, stored["decision"], stored["via"])
    return summary(conn, run_id)


def expire_if_due(conn, run_id: int, now: datetime | None = None) -> dict:
    """A held run nobody decided on by its deadline is aborted."""
    run = runs.get(conn, run_id)
    now = now or datetime.now(UTC)
    if run["status"] == "held" and run["deadline"] and now >= run["deadline"]:
        with conn.cursor() as cur:
            undecided = filter_.stored_decision(cur, run_id) is None
        if undecided:
            return decide(conn, run_id, "expired", by=None, reason="deadline passed",
                          via="deadline")
    return summary(conn, run_id)


def commit(conn, run_id: int) -> dict:
    """Move the customer's current state forward by the run's change set (once). Only a run
    that the filter passed, or that a person opened, is committed."""
    run = runs.get(conn, run_id)
    if run["status"] in ("committed", "unchanged"):
        return summary(conn, run_id)
    opened = False
    if run["status"] == "held":
        with conn.cursor() as cur:
            decision = filter_.stored_decision(cur, run_id)
        opened = decision is not None and decision["decision"] == "opened"
        if not opened:
            raise RuntimeError(f"run {run_id} is held by the filter and not opened")
    elif run["status"] != "diffed":
        raise RuntimeError(f"run {run_id} is {run['status']}: only a diffed run can be committed")
    elif not (run["verdict"] or {}).get("passed"):
        raise RuntimeError(f"run {run_id} has not passed the filter")
    with conn, conn.cursor() as cur:
        runs.lock_customer(cur, run["customer"])
        committed = runs.latest(cur, run["customer"], ("committed",))
        if (committed["id"] if committed else None) != run["base_run"]:
            raise RuntimeError(
                f"run {run_id} was diffed against run {run['base_run']}, but the current state"
                f" is now run {committed['id'] if committed else None}: stage the file again"
            )
        state.apply_changes(cur, run_id, run["customer"])
        staging.drop(cur, run_id)
        runs.update(cur, run_id, status="committed")
    log.info("run %s committed", run_id)
    return summary(conn, run_id)


def apply_to_lms(conn, run_id: int, config: CustomerConfig, mode: str,
                 only: tuple[str, ...] | None = None) -> dict:
    """Apply a committed run to the customer's LMS site (resumes where a crash left it)."""
    apply.apply_run(conn, run_id, mode=mode, course_archiving=config.course_archiving,
                    only=only)
    return summary(conn, run_id)


def finish_pending_apply(conn, customer: str, config: CustomerConfig, mode: str) -> None:
    """A run committed to the import database but not (fully) applied to the LMS is finished
    before the next file: the LMS must not skip a change set."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM sis.runs WHERE customer = %s AND status = 'committed'"
            " AND lms_applied_at IS NULL ORDER BY id",
            (customer,),
        )
        pending = [row[0] for row in cur.fetchall()]
    for run_id in pending:
        log.info("run %s: finishing its LMS apply first", run_id)
        apply_to_lms(conn, run_id, config, mode)


def _deferred_waiting(conn, customer: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM sis.deferred_deletions WHERE customer = %s"
            " AND applied_run IS NULL AND dropped_run IS NULL)",
            (customer,),
        )
        return cur.fetchone()[0]


class RolloverTooEarly(Exception):
    pass


def run(conn, customer: str, path, *, dry_run: bool = False, on: date | None = None,
        config: CustomerConfig | None = None, rollover: bool = False) -> dict:
    """One import without Airflow: calendar, read, stage, diff, filter, commit, apply.

    ``on`` is the date the calendar is asked about (default: today in Europe/Oslo). A dry run
    computes the change set and the filter's verdict, and applies nothing. A rollover run is
    judged by the rollover profile and refused before the earliest rollover date. A held run
    stops; running the same file again after ``sisflow filter open`` goes on from there.
    """
    config = config or load_customer(customer)
    day = on or calendar.today()
    cal = calendar.state_on(config, day)
    calendar_info = {"date": day.isoformat(), **cal.as_dict()}
    if cal.mode == calendar.PAUSED:
        log.info("%s is paused until %s: nothing fetched or applied", customer, cal.until)
        return {"customer": customer, "status": "paused", "calendar": calendar_info}
    if rollover and day < cal.earliest_rollover:
        raise RolloverTooEarly(
            f"{customer}: rollover is allowed from {cal.earliest_rollover}, not on {day}")
    if not dry_run:
        finish_pending_apply(conn, customer, config, cal.mode)
    release = cal.mode == calendar.NORMAL
    result = stage(conn, customer, path,
                   allow_unchanged=not (release and _deferred_waiting(conn, customer)))
    if result["status"] == "staged":
        result = compute_diff(conn, result["id"], release_deferred=release)
    if result["status"] == "diffed":
        result = judge(conn, result["id"], config, rollover=rollover)
    if result["status"] == "held":
        result = expire_if_due(conn, result["id"])
    go = result["status"] == "diffed" or (
        result["status"] == "held" and (result["decision"] or {}).get("decision") == "opened")
    if go and not dry_run:
        commit(conn, result["id"])
        result = apply_to_lms(conn, result["id"], config, cal.mode)
    result["calendar"] = calendar_info
    return result


def _no_changes() -> dict:
    return {e: dict.fromkeys(diff.OPS, 0) for e in ("person", "group", "membership")}


def send_status(conn, config: CustomerConfig, run_id: int | None, *, calendar: dict | None = None,
                failed_task: str | None = None, airflow: dict | None = None,
                sender=None) -> dict:
    """Build the run's status email and send it (to the outbox unless a sender is given)."""
    from .report.build import build
    from .report.email import Outbox

    report = build(conn, config, run_id, calendar=calendar, failed_task=failed_task,
                   airflow=airflow)
    where = (sender or Outbox()).send(report)
    return {"outcome": report.outcome, "subject": report.subject, "sent": where}
