"""How long the import database keeps what it learnt about a person, and the removal of the
rest: this is children's data, kept no longer than the integration needs it.

What a later run needs is kept whatever its age: the current state (what the next file is
diffed against), the deletions still waiting for a delay-delete window to end, the change set
of a run that is not finished (staged, held, or committed but not fully applied: the LMS must
never skip a change set), the sync keys attached by hand (an attach can be undone), and each
run's summary (status, file name and checksum, counts, verdict and decision: ids and counts,
no names). Older than the retention period (``SISFLOW_RETENTION_DAYS``, default 90 days), the
rest goes: a finished run's change rows (which carry names, emails and birth dates), its LMS
journal (which does too: a run older than that cannot be undone), its apply outcomes,
problems and kept-records lists (pupils' ids), settled deferred deletions, undone
attachments, staged files in the landing zone and emails in the outbox.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta

from psycopg2 import sql

from . import settings
from .config import check_id
from .entities import ENTITIES
from .runs import PENDING, RunStatus

log = logging.getLogger(__name__)

DEFAULT_DAYS = 90


def days() -> float:
    return float(os.environ.get("SISFLOW_RETENTION_DAYS") or DEFAULT_DAYS)


def _finished_runs(cur, cutoff: datetime, customer: str | None) -> list[int]:
    """Runs older than ``cutoff`` whose history no later run needs."""
    cur.execute(
        "SELECT id FROM sis.runs WHERE created_at < %(cutoff)s AND pruned_at IS NULL"
        " AND (%(customer)s::text IS NULL OR customer = %(customer)s)"
        " AND status <> ALL(%(pending)s)"
        " AND NOT (status = %(committed)s AND lms_applied_at IS NULL)"
        " ORDER BY id",
        {
            "cutoff": cutoff,
            "customer": customer,
            "pending": [str(s) for s in PENDING],
            "committed": str(RunStatus.COMMITTED),
        },
    )
    return [row[0] for row in cur.fetchall()]


def prune_database(
    conn, *, older_than_days: float, customer: str | None = None, now: datetime | None = None
) -> dict[str, int]:
    """Remove the history older than the period from the import database; the counts."""
    from .staging import drop

    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    gone = {
        "runs": 0,
        "change_rows": 0,
        "apply_outcomes": 0,
        "journal": 0,
        "problems": 0,
        "kept": 0,
        "deferred_settled": 0,
        "attachments_undone": 0,
    }
    with conn, conn.cursor() as cur:
        ids = _finished_runs(cur, cutoff, customer)
        for run_id in ids:  # a failed run may have left its staging tables behind
            drop(cur, run_id)
        if ids:
            for entity in ENTITIES:
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE run_id = ANY(%s)").format(entity.changes), (ids,)
                )
                gone["change_rows"] += cur.rowcount
            for table, key in (
                ("apply_outcomes", "apply_outcomes"),
                ("lms_journal", "journal"),
                ("problems", "problems"),
                ("kept", "kept"),
            ):
                cur.execute(f"DELETE FROM sis.{table} WHERE run_id = ANY(%s)", (ids,))
                gone[key] += cur.rowcount
            cur.execute("UPDATE sis.runs SET pruned_at = now() WHERE id = ANY(%s)", (ids,))
            gone["runs"] = len(ids)
        cur.execute(
            "DELETE FROM sis.deferred_deletions d WHERE (d.applied_run IS NOT NULL"
            " OR d.dropped_run IS NOT NULL) AND (%(customer)s::text IS NULL"
            " OR d.customer = %(customer)s) AND EXISTS (SELECT 1 FROM sis.runs r"
            " WHERE r.id = COALESCE(d.applied_run, d.dropped_run) AND r.created_at < %(cutoff)s)",
            {"customer": customer, "cutoff": cutoff},
        )
        gone["deferred_settled"] = cur.rowcount
        cur.execute(
            "DELETE FROM sis.sync_key_attachments WHERE undone_at < %(cutoff)s"
            " AND (%(customer)s::text IS NULL OR customer = %(customer)s)",
            {"customer": customer, "cutoff": cutoff},
        )
        gone["attachments_undone"] = cur.rowcount
    return gone


def prune_files(conn, *, older_than_days: float, customer: str | None = None) -> dict[str, int]:
    """Landed exports and outbox emails older than the period (the files of the last
    committed run and of unfinished runs stay, whatever their age)."""
    from .sources import landing

    if customer is not None:
        check_id(customer)  # a path is made of it below
    gone = {"landed_files": 0, "emails": 0}
    outbox = settings.home() / "outbox"
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT customer FROM sis.runs WHERE %(c)s::text IS NULL OR customer = %(c)s",
            {"c": customer},
        )
        customers = [row[0] for row in cur.fetchall()]
        for who in customers:
            cur.execute(
                "SELECT file_name FROM sis.runs WHERE customer = %(c)s AND (status = ANY(%(p)s)"
                " OR id = (SELECT max(id) FROM sis.runs WHERE customer = %(c)s"
                " AND status = %(committed)s))",
                {"c": who, "p": [str(s) for s in PENDING], "committed": str(RunStatus.COMMITTED)},
            )
            keep = {row[0] for row in cur.fetchall()}
            gone["landed_files"] += len(landing.prune(who, older_than_days, keep))
    conn.rollback()
    cutoff = time.time() - older_than_days * 86400
    folders = (
        [outbox / customer]
        if customer
        else ([p for p in outbox.iterdir() if p.is_dir()] if outbox.is_dir() else [])
    )
    for folder in folders:
        for path in folder.glob("*.eml") if folder.is_dir() else []:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                gone["emails"] += 1
    return gone


def prune(
    conn,
    *,
    older_than_days: float | None = None,
    customer: str | None = None,
    now: datetime | None = None,
) -> dict[str, float]:
    """Everything older than the retention period, in the database and on disk."""
    period = days() if older_than_days is None else older_than_days
    gone = prune_database(conn, older_than_days=period, customer=customer, now=now)
    gone.update(prune_files(conn, older_than_days=period, customer=customer))
    log.info("retention (%g days): %s", period, gone)
    return {"days": period, **gone}
