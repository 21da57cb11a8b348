"""An accepted pair in the change set, the current state and the LMS.

In the change set, the pair's delete and create become one update of the new key (the filter
counts it so), listing ``sourcedid`` among the changed columns; the memberships the old key
had and the new key has again are no change at all, and those that differ are updates. In
the current state the old key's rows take the new key at the commit, so the update finds
them. In the LMS the object takes the new key before anything else of the run is applied
(:func:`sisflow.apply._relinks`): it keeps its id, its content and its history.

Every statement joins the run's accepted pairs from a temporary table with statistics, by
hash: an SIS that re-keyed everything brings a pair for every person and group, and a join
the planner took for a handful of rows would be a nested loop over a million memberships.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg2 import sql

from .. import diff  # a module, not its name: sisflow.diff imports this package
from ..entities import GROUP, MEMBERSHIP, PERSON, idents, key_match


def _pairs(cur, run_id: int) -> int:
    """``_relinked``: the run's accepted pairs, (entity, old_key, new_key); how many."""
    cur.execute("DROP TABLE IF EXISTS pg_temp._relinked")
    cur.execute(
        "CREATE TEMP TABLE _relinked ON COMMIT DROP AS SELECT entity, old_key, new_key"
        " FROM sis.relinks WHERE run_id = %s AND decision = 'accepted' AND undone_at IS NULL",
        (run_id,),
    )
    count = cur.rowcount
    if count:
        cur.execute("ANALYZE _relinked")
    return count


def _of(entity: str) -> sql.Composed:
    return sql.SQL("(SELECT old_key, new_key FROM _relinked WHERE entity = {})").format(
        sql.Literal(entity)
    )


def _moved(cur, table: sql.Composable, where: str, params: dict) -> None:
    """``_identity_moved``: the memberships of ``table`` (``where``, on ``d``) that name an old
    key, with the keys they take (a group and a member may both be re-keyed): one pass over
    the memberships however many pairs there are."""
    cur.execute("DROP TABLE IF EXISTS pg_temp._identity_moved")
    cur.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE _identity_moved ON COMMIT DROP AS
            SELECT d.group_id, d.member_id, d.idtype, d.roletype,
                   COALESCE(g.new_key, d.group_id) AS new_group,
                   COALESCE(p.new_key, m.new_key, d.member_id) AS new_member
            FROM {table} d
            LEFT JOIN {persons} p ON d.idtype = 1 AND p.old_key = d.member_id
            LEFT JOIN {groups} g ON g.old_key = d.group_id
            LEFT JOIN {groups} m ON d.idtype = 2 AND m.old_key = d.member_id
            WHERE {where}
              AND (p.old_key IS NOT NULL OR g.old_key IS NOT NULL OR m.old_key IS NOT NULL)
            """
        ).format(table=table, persons=_of("person"), groups=_of("group"), where=sql.SQL(where)),
        params,
    )
    cur.execute("ANALYZE _identity_moved")


def rewrite(cur, run_id: int, customer: str) -> int:
    """Turn the run's accepted pairs into updates in its change set (again: nothing more).
    Returns how many pairs were rewritten now."""
    if not _pairs(cur, run_id):
        return 0
    params = {"run": run_id, "customer": customer}
    rewritten = 0
    for entity in (PERSON, GROUP):
        cur.execute(
            sql.SQL(
                """
                UPDATE {changes} s SET op = 'update',
                    changed = array_remove(ARRAY['sourcedid', {changed}]::text[], NULL)
                FROM {pairs} r, {state} c
                WHERE s.run_id = %(run)s AND s.op = 'create' AND s.sourcedid = r.new_key
                  AND c.customer = %(customer)s AND c.sourcedid = r.old_key
                """
            ).format(
                changes=entity.changes,
                changed=diff.changed_columns(entity),
                pairs=_of(entity.name),
                state=entity.table,
            ),
            params,
        )
        rewritten += cur.rowcount
        cur.execute(
            sql.SQL(
                "DELETE FROM {changes} s USING {pairs} r WHERE s.run_id = %(run)s"
                " AND s.op = 'delete' AND s.sourcedid = r.old_key"
            ).format(changes=entity.changes, pairs=_of(entity.name)),
            params,
        )
    _memberships(cur, params)
    return rewritten


def _memberships(cur, params: dict) -> None:
    """The old keys' deleted memberships under the new keys; where the new key has the same
    membership again, the two are one update (or nothing, when it is the same)."""
    with _by_hash(cur):
        _memberships_by_hash(cur, params)


@contextmanager
def _by_hash(cur) -> Iterator[None]:
    """Joins of a run's change rows by hash, never a nested loop: the planner takes a new
    run's rows for few (its statistics are of earlier runs), and a nested loop over the
    12,000 memberships of a small municipality that changed SIS took 13 s."""
    cur.execute("SET LOCAL enable_nestloop = off")
    try:
        yield
    finally:
        cur.execute("RESET enable_nestloop")


def _memberships_by_hash(cur, params: dict) -> None:
    _moved(cur, sql.SQL("sis.membership_changes"), "d.run_id = %(run)s AND d.op = 'delete'", params)
    # the run's creates of a new key, in a table with statistics: the planner takes a run's
    # change rows for the average run's, and a join of a large run's creates it took for a
    # few became a nested loop (20 s for a small municipality that changed SIS)
    cur.execute("DROP TABLE IF EXISTS pg_temp._identity_created, pg_temp._identity_gone")
    cur.execute(
        sql.SQL(
            "CREATE TEMP TABLE _identity_created ON COMMIT DROP AS SELECT {key}"
            " FROM sis.membership_changes s WHERE s.run_id = %(run)s AND s.op = 'create'"
            " AND (s.idtype = 1 AND s.member_id IN (SELECT new_key FROM {persons})"
            " OR s.group_id IN (SELECT new_key FROM {groups})"
            " OR s.idtype = 2 AND s.member_id IN (SELECT new_key FROM {groups}))"
        ).format(key=idents(MEMBERSHIP.key, "s"), persons=_of("person"), groups=_of("group")),
        params,
    )
    cur.execute("ANALYZE _identity_created")
    # deletions the new key comes back to: set aside (under the new key) for the creates
    cur.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE _identity_gone ON COMMIT DROP AS
            WITH gone AS (
                DELETE FROM sis.membership_changes s USING _identity_moved x
                WHERE s.run_id = %(run)s AND s.op = 'delete' AND {match}
                  AND (x.new_group, x.new_member, x.idtype, x.roletype) IN (
                      SELECT group_id, member_id, idtype, roletype FROM _identity_created)
                RETURNING x.new_group AS group_id, x.new_member AS member_id, s.idtype,
                          s.roletype, {values}
            )
            SELECT * FROM gone
            """
        ).format(match=key_match(MEMBERSHIP, "s", "x"), values=idents(MEMBERSHIP.values, "s")),
        params,
    )
    # the others stay deletions, of the key the object has from now on
    cur.execute(
        sql.SQL(
            "UPDATE sis.membership_changes s SET group_id = x.new_group, member_id = x.new_member"
            " FROM _identity_moved x WHERE s.run_id = %(run)s AND s.op = 'delete' AND {match}"
        ).format(match=key_match(MEMBERSHIP, "s", "x")),
        params,
    )
    cur.execute("ANALYZE _identity_gone")
    cur.execute(
        sql.SQL(
            "DELETE FROM sis.membership_changes s USING _identity_gone c"
            " WHERE s.run_id = %(run)s AND s.op = 'create' AND {match}"
            " AND ROW({s_values}) IS NOT DISTINCT FROM ROW({c_values})"
        ).format(
            match=key_match(MEMBERSHIP, "s", "c"),
            s_values=idents(MEMBERSHIP.values, "s"),
            c_values=idents(MEMBERSHIP.values, "c"),
        ),
        params,
    )
    cur.execute(
        sql.SQL(
            "UPDATE sis.membership_changes s SET op = 'update',"
            " changed = array_remove(ARRAY[{changed}]::text[], NULL)"
            " FROM _identity_gone c WHERE s.run_id = %(run)s AND s.op = 'create' AND {match}"
        ).format(changed=diff.changed_columns(MEMBERSHIP), match=key_match(MEMBERSHIP, "s", "c")),
        params,
    )


def rename_in_state(cur, run_id: int, customer: str) -> int:
    """The commit's first step: the run's accepted pairs' old keys take their new keys in the
    current state (a membership the new key already has there is left to the change set).
    Returns how many persons and groups were renamed."""
    if not _pairs(cur, run_id):
        return 0  # the memberships are not scanned for keys that no run renames
    params = {"customer": customer}
    renamed = 0
    for entity in (PERSON, GROUP):
        cur.execute(
            sql.SQL(
                "UPDATE {state} c SET sourcedid = r.new_key FROM {pairs} r"
                " WHERE c.customer = %(customer)s AND c.sourcedid = r.old_key"
            ).format(state=entity.table, pairs=_of(entity.name)),
            params,
        )
        renamed += cur.rowcount
    _rename_memberships(cur, params)
    return renamed


def _rename_memberships(cur, params: dict) -> None:
    _moved(cur, sql.SQL("sis.memberships"), "d.customer = %(customer)s", params)
    # a membership the new key has already (dirty data) is left to the change set
    cur.execute(
        sql.SQL(
            "DELETE FROM sis.memberships m USING _identity_moved x, sis.memberships c"
            " WHERE m.customer = %(customer)s AND {match} AND c.customer = %(customer)s"
            " AND c.group_id = x.new_group AND c.member_id = x.new_member"
            " AND c.idtype = x.idtype AND c.roletype = x.roletype"
        ).format(match=key_match(MEMBERSHIP, "m", "x")),
        params,
    )
    cur.execute(
        sql.SQL(
            "UPDATE sis.memberships m SET group_id = x.new_group, member_id = x.new_member"
            " FROM _identity_moved x WHERE m.customer = %(customer)s AND {match}"
        ).format(match=key_match(MEMBERSHIP, "m", "x")),
        params,
    )
