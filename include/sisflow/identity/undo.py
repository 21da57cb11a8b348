"""Taking a relink back: the LMS object and the current state return to the old key.

The two keys are then two people (or groups) again, as if the pair had been refused: the next
import finds the pair once more, remembers that it was undone, and goes on as a delete of the
old key and a create of the new one, through the filter like any other change.
"""

from __future__ import annotations

from .. import runs
from ..errors import NotDecidable
from ..lms.postgres_site import PostgresSite
from .decisions import ACCEPTED, Pair, listed


def undo(conn, pair_id: int, *, by: str, reason: str, holder) -> Pair:
    """Undo an applied relink (under the customer's lease: never beside a run)."""
    with conn, conn.cursor() as cur:
        cur.execute("SELECT customer FROM sis.relinks WHERE id = %s", (pair_id,))
        row = cur.fetchone()
    if row is None:
        raise NotDecidable(f"there is no pair {pair_id}")
    customer = row[0]
    runs.acquire(conn, customer, holder.id, holder.description, process=True)
    try:
        with conn, conn.cursor() as cur:
            runs.guard(cur, customer, holder.id)
            (pair,) = listed(cur, ids=[pair_id])
            if pair.decision != ACCEPTED or pair.applied_run is None:
                raise NotDecidable(
                    f"pair {pair_id} was not relinked ({pair.decision or 'undecided'},"
                    f" {'applied' if pair.applied_run else 'not applied'}): nothing to undo"
                )
            if pair.undone_at is not None:
                raise NotDecidable(f"pair {pair_id} was undone already by {pair.undone_by}")
            _state_back(cur, customer, pair)
            site = PostgresSite(cur, customer)
            relink = site.relink_users if pair.entity == "person" else site.relink_groups
            failed = relink([(pair.new_key, pair.old_key)])
            if failed:
                raise NotDecidable(f"pair {pair_id} cannot be undone: {failed[0].detail}")
            cur.execute(
                "UPDATE sis.relinks SET undone_by = %s, undone_at = now(), undo_reason = %s"
                " WHERE id = %s",
                (by, reason, pair_id),
            )
            (pair,) = listed(cur, ids=[pair_id])
    finally:
        runs.release(conn, customer, holder.id)
    return pair


def _state_back(cur, customer: str, pair: Pair) -> None:
    params = {"customer": customer, "old": pair.old_key, "new": pair.new_key}
    table = "sis.persons" if pair.entity == "person" else "sis.groups"
    cur.execute(
        f"UPDATE {table} SET sourcedid = %(old)s WHERE customer = %(customer)s"
        f" AND sourcedid = %(new)s AND NOT EXISTS (SELECT 1 FROM {table}"
        " WHERE customer = %(customer)s AND sourcedid = %(old)s)",
        params,
    )
    if cur.rowcount != 1:
        raise NotDecidable(
            f"pair {pair.id} cannot be undone: the current state no longer holds"
            f" {pair.new_key} alone (a later run changed it)"
        )
    columns = (
        [("member_id", "idtype = 1")]
        if pair.entity == "person"
        else [("group_id", "true"), ("member_id", "idtype = 2")]
    )
    for column, only in columns:
        cur.execute(
            f"UPDATE sis.memberships SET {column} = %(old)s WHERE customer = %(customer)s"
            f" AND {only} AND {column} = %(new)s",
            params,
        )
