"""Runs: one file for one customer, from arrival to commit, as rows in ``sis.runs``; and the
customer's lease, which lets one run of a customer go at a time.

Status goes reading -> staged -> diffed -> committed, with ``held`` after diffed when the filter
holds the run (until it is opened; rejected or expired, it ends as ``aborted``). A file
rejected whole ends as ``rejected``; a file identical to the last committed one ends as
``unchanged``; a pending run that a newer file replaces ends as ``superseded``; a dry run ends
as ``dry-run`` once judged, and nothing of it is ever resumed by a real run.

The lease. Whoever runs a customer (an Airflow DAG run, a ``sisflow`` process) takes the
customer's lease in ``sis.customer_leases`` when it begins and gives it back when it finishes.
Every transaction that changes the customer's state first calls :func:`guard`: it takes the
customer's advisory lock for the transaction, checks that the lease is still the caller's and
renews it. So the phases of two runs never interleave, a second run ends at once ("another run
for X is in progress"), and a run whose lease was taken over cannot write again. A lease ends
when its holder gives it back, when it expires (an Airflow run killed by hand), or, for a
``sisflow`` process, when the process's database session is gone (it holds a session-level
advisory lock for as long as it lives).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from psycopg2.extras import RealDictCursor

from .errors import CustomerBusy, LeaseLost


class RunStatus(StrEnum):
    READING = "reading"
    STAGED = "staged"
    DIFFED = "diffed"
    HELD = "held"
    COMMITTED = "committed"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    ABORTED = "aborted"
    FAILED = "failed"
    DRY_RUN = "dry-run"


PENDING = (RunStatus.READING, RunStatus.STAGED, RunStatus.DIFFED, RunStatus.HELD)

#: how long a lease lasts after its holder last wrote; a held run's lasts until its deadline
LEASE_TTL = timedelta(hours=1)


def lock_customer(cur, customer: str) -> None:
    """Serialise the transactions of one customer (held until the transaction ends)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('sisflow:' || %s))", (customer,))


# -- the lease -----------------------------------------------------------------------------------


def _session_key(holder: str) -> int:
    return int.from_bytes(hashlib.sha256(holder.encode()).digest()[:8], "big", signed=True)


def _alive(cur, lease: dict) -> bool:
    """A process's lease lives as long as its session lock; others until they expire."""
    if lease["expires_at"] <= datetime.now(UTC):
        return False
    if lease["session_key"] is None:
        return True
    cur.execute("SELECT pg_try_advisory_lock(%s)", (lease["session_key"],))
    if cur.fetchone()[0]:  # nobody holds it: the process is gone
        cur.execute("SELECT pg_advisory_unlock(%s)", (lease["session_key"],))
        return False
    return True


def _lease(cur, customer: str) -> dict | None:
    cur.execute(
        "SELECT holder, description, acquired_at, expires_at, session_key"
        " FROM sis.customer_leases WHERE customer = %s",
        (customer,),
    )
    row = cur.fetchone()
    keys = ("holder", "description", "acquired_at", "expires_at", "session_key")
    return dict(zip(keys, row, strict=True)) if row else None


def acquire(conn, customer: str, holder: str, description: str, *, process: bool) -> None:
    """Take the customer's lease for ``holder`` (again, after a retry, is fine).

    ``process``: the holder is this process, and the lease ends with its database session.
    Raises :class:`CustomerBusy` when another holder has it."""
    key = _session_key(holder) if process else None
    with conn, conn.cursor() as cur:
        lock_customer(cur, customer)
        lease = _lease(cur, customer)
        if lease and lease["holder"] != holder and _alive(cur, lease):
            raise CustomerBusy(
                f"another run for {customer} is in progress: {lease['description']},"
                f" since {lease['acquired_at']:%Y-%m-%d %H:%M} UTC"
            )
        cur.execute(
            """
            INSERT INTO sis.customer_leases AS l
                (customer, holder, description, acquired_at, expires_at, session_key)
            VALUES (%(c)s, %(h)s, %(d)s, now(), now() + %(ttl)s, %(k)s)
            ON CONFLICT (customer) DO UPDATE SET
                holder = EXCLUDED.holder, description = EXCLUDED.description,
                acquired_at = CASE WHEN l.holder = EXCLUDED.holder THEN l.acquired_at
                                   ELSE now() END,
                expires_at = GREATEST(EXCLUDED.expires_at,
                                      CASE WHEN l.holder = EXCLUDED.holder THEN l.expires_at END),
                session_key = EXCLUDED.session_key
            """,
            {"c": customer, "h": holder, "d": description, "ttl": LEASE_TTL, "k": key},
        )
    if key is not None:
        with conn.cursor() as cur:  # session level: outlives the transaction, not the process
            cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        conn.commit()


def guard(cur, customer: str, holder: str | None, *, until: datetime | None = None) -> None:
    """At the start of a transaction that changes the customer's state: take the customer's
    lock, check that the lease is still ``holder``'s, and renew it (to ``until`` if later).
    ``holder=None`` (a tool or a test acting outside a run) only takes the lock."""
    lock_customer(cur, customer)
    if holder is None:
        return
    lease = _lease(cur, customer)
    if lease is None or lease["holder"] != holder:
        taken = f" by {lease['description']}" if lease else ""
        raise LeaseLost(f"this run's lease on {customer} ended and was taken over{taken}")
    cur.execute(
        "UPDATE sis.customer_leases SET expires_at = GREATEST(expires_at, now() + %s, %s)"
        " WHERE customer = %s",
        (LEASE_TTL, until, customer),
    )


def release(conn, customer: str, holder: str) -> None:
    """Give the lease back (a no-op when it is not the holder's any more)."""
    with conn, conn.cursor() as cur:
        lock_customer(cur, customer)
        cur.execute(
            "DELETE FROM sis.customer_leases WHERE customer = %s AND holder = %s"
            " RETURNING session_key",
            (customer, holder),
        )
        row = cur.fetchone()
    if row and row[0] is not None:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (row[0],))
        conn.commit()


# -- run records ---------------------------------------------------------------------------------


def get(conn, run_id: int) -> dict:
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute("SELECT * FROM sis.runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"no run {run_id}")
    return dict(row)


def row(cur, run_id: int) -> dict:
    """The run as the caller's transaction sees it (read under the customer's lock)."""
    cur.execute("SELECT * FROM sis.runs WHERE id = %s", (run_id,))
    found = cur.fetchone()
    if found is None:
        raise LookupError(f"no run {run_id}")
    return dict(zip([d.name for d in cur.description], found, strict=True))


_SUMMARY = (
    "id",
    "customer",
    "status",
    "file_name",
    "file_size",
    "sha256",
    "datasource",
    "file_datetime",
    "file_type",
    "records",
    "unchanged",
    "skipped",
    "problem_counts",
    "fatal",
    "counts",
    "base_run",
    "same_as_run",
    "lms_applied_at",
    "lms_mode",
    "lms_counts",
    "base_counts",
    "profile",
    "verdict",
    "held_at",
    "deadline",
    "airflow_run",
    "plan",
    "emails",
)


def summary(conn, run_id: int) -> dict:
    """What the command line prints, the DAG passes on and the email reports about a run."""
    run = get(conn, run_id)
    result = {k: run[k] for k in _SUMMARY}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT decision, decided_by, decided_at, reason, via"
            " FROM sis.filter_decisions WHERE run_id = %s",
            (run_id,),
        )
        row = cur.fetchone()
    result["decision"] = (
        dict(zip(("decision", "decided_by", "decided_at", "reason", "via"), row, strict=True))
        if row
        else None
    )
    result["relinks"] = _relinks(conn, run_id)
    return result


#: the pairs a run's summary lists (ids and evidence names); the counts cover them all
SUMMARY_PAIRS = 50


def _relinks(conn, run_id: int) -> dict | None:
    """The run's identity changes: counts by decision, and the first pairs (waiting first)."""
    from .identity.decisions import listed

    with conn.cursor() as cur:
        cur.execute(
            "SELECT COALESCE(decision, 'waiting'), count(*) FROM sis.relinks WHERE run_id = %s"
            " GROUP BY 1",
            (run_id,),
        )
        found = dict(cur.fetchall())
        if not found:
            return None
        pairs = listed(cur, run_id=run_id, first=SUMMARY_PAIRS)
    counts = {"accepted": 0, "refused": 0, "waiting": 0, **found}
    return {"counts": counts, "pairs": [p.as_dict() for p in pairs]}


def latest(cur, customer: str, statuses: tuple[str, ...] | None = None) -> dict | None:
    cur.execute(
        "SELECT id, status, sha256, file_size, plan->'school_year'->>'label',"
        " coalesce((plan->>'dry_run')::boolean, false) FROM sis.runs"
        " WHERE customer = %s AND (%s::text[] IS NULL OR status = ANY(%s::text[]))"
        " ORDER BY id DESC LIMIT 1",
        (customer, list(statuses) if statuses else None, list(statuses) if statuses else None),
    )
    row = cur.fetchone()
    keys = ("id", "status", "sha256", "size", "school_year", "dry_run")
    return dict(zip(keys, row, strict=True)) if row else None


def create(
    cur, customer: str, path: str, name: str, size: int, sha256: str | None, **fields
) -> int:
    columns = {
        "customer": customer,
        "file_path": path,
        "file_name": name,
        "file_size": size,
        "sha256": sha256,
        "status": RunStatus.READING,
        **fields,
    }
    cur.execute(
        f"INSERT INTO sis.runs ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        " RETURNING id",
        [_db(v) for v in columns.values()],
    )
    return cur.fetchone()[0]


def update(cur, run_id: int, **fields) -> None:
    assignments = ", ".join(f"{k} = %s" for k in fields)
    cur.execute(
        f"UPDATE sis.runs SET {assignments}, updated_at = now() WHERE id = %s",
        [*(_db(v) for v in fields.values()), run_id],
    )


def _db(value):
    if isinstance(value, StrEnum):
        return str(value)
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value


def record_step(cur, run_id: int, step: str, counts: dict) -> None:
    cur.execute(
        "INSERT INTO sis.apply_steps (run_id, step, counts) VALUES (%s, %s, %s)",
        (run_id, step, json.dumps(counts)),
    )
