"""Runs: one file for one customer, from arrival to commit, as rows in ``sis.runs``.

Status goes reading -> staged -> diffed -> committed, with ``held`` after diffed when the filter
holds the run (until it is opened; rejected or expired, it ends as ``aborted``). A file
rejected whole ends as ``rejected``; a file identical to the last committed one ends as
``unchanged``; a pending run that a newer file replaces ends as ``superseded``.
"""

from __future__ import annotations

import json

from psycopg2.extras import RealDictCursor

PENDING = ("reading", "staged", "diffed", "held")


def lock_customer(cur, customer: str) -> None:
    """Serialise the runs of one customer (held until the transaction ends)."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('sisflow:' || %s))", (customer,))


def get(conn, run_id: int) -> dict:
    with conn.cursor(cursor_factory=RealDictCursor) as cur:
        cur.execute("SELECT * FROM sis.runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"no run {run_id}")
    return dict(row)


def latest(cur, customer: str, statuses: tuple[str, ...] | None = None) -> dict | None:
    cur.execute(
        "SELECT id, status, sha256 FROM sis.runs WHERE customer = %s"
        " AND (%s::text[] IS NULL OR status = ANY(%s::text[]))"
        " ORDER BY id DESC LIMIT 1",
        (customer, list(statuses) if statuses else None, list(statuses) if statuses else None),
    )
    row = cur.fetchone()
    return {"id": row[0], "status": row[1], "sha256": row[2]} if row else None


def create(cur, customer: str, path: str, name: str, size: int, sha256: str, **fields) -> int:
    columns = {"customer": customer, "file_path": path, "file_name": name, "file_size": size,
               "sha256": sha256, "status": "reading", **fields}
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
    return json.dumps(value) if isinstance(value, dict | list) else value


def record_step(cur, run_id: int, step: str, counts: dict) -> None:
    cur.execute(
        "INSERT INTO sis.apply_steps (run_id, step, counts) VALUES (%s, %s, %s)",
        (run_id, step, json.dumps(counts)),
    )
