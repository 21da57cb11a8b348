"""An accepted pair in the change set, the current state and the LMS.

In the change set, the pair's delete and create become one update of the new key (the filter
counts it so), listing ``sourcedid`` among the changed columns; the memberships the old key
had and the new key has again are no change at all, and those that differ are updates. In
the current state the old key's rows take the new key at the commit, so the update finds
them. In the LMS the object takes the new key before anything else of the run is applied
(:func:`sisflow.apply._relinks`): it keeps its id, its content and its history.
"""

from __future__ import annotations

from psycopg2 import sql

from ..diff import changed_columns
from ..entities import GROUP, MEMBERSHIP, PERSON, idents, key_match

_ACCEPTED = "r.run_id = %(run)s AND r.decision = 'accepted' AND r.undone_at IS NULL"


def rewrite(cur, run_id: int, customer: str) -> int:
    """Turn the run's accepted pairs into updates in its change set (again: nothing more).
    Returns how many pairs were rewritten now."""
    params = {"run": run_id, "customer": customer}
    rewritten = 0
    for entity in (PERSON, GROUP):
        cur.execute(
            sql.SQL(
                """
                UPDATE {changes} s SET op = 'update',
                    changed = array_remove(ARRAY['sourcedid', {changed}]::text[], NULL)
                FROM sis.relinks r, {state} c
                WHERE {accepted} AND r.entity = {name} AND s.run_id = %(run)s
                  AND s.op = 'create' AND s.sourcedid = r.new_key
                  AND c.customer = %(customer)s AND c.sourcedid = r.old_key
                """
            ).format(
                changes=entity.changes,
                changed=changed_columns(entity),
                state=entity.table,
                accepted=sql.SQL(_ACCEPTED),
                name=sql.Literal(entity.name),
            ),
            params,
        )
        rewritten += cur.rowcount
        cur.execute(
            sql.SQL(
                "DELETE FROM {changes} s USING sis.relinks r WHERE {accepted}"
                " AND r.entity = {name} AND s.run_id = %(run)s AND s.op = 'delete'"
                " AND s.sourcedid = r.old_key"
            ).format(
                changes=entity.changes, accepted=sql.SQL(_ACCEPTED), name=sql.Literal(entity.name)
            ),
            params,
        )
    _memberships(cur, params)
    return rewritten


def _memberships(cur, params: dict) -> None:
    """The old keys' deleted memberships under the new keys; where the new key has the same
    membership again, the two are one update (or nothing, when it is the same)."""
    for column, entity, only in (
        ("member_id", "person", "s.idtype = 1"),
        ("group_id", "group", "true"),
        ("member_id", "group", "s.idtype = 2"),
    ):
        cur.execute(
            f"UPDATE sis.membership_changes s SET {column} = r.new_key FROM sis.relinks r"
            f" WHERE {_ACCEPTED} AND r.entity = '{entity}' AND s.run_id = %(run)s"
            f" AND s.op = 'delete' AND {only} AND s.{column} = r.old_key",
            params,
        )
    cur.execute("DROP TABLE IF EXISTS _identity_gone")
    cur.execute(
        sql.SQL(
            """
            CREATE TEMP TABLE _identity_gone ON COMMIT DROP AS
            WITH relinked AS (
                SELECT r.entity, r.new_key FROM sis.relinks r WHERE {accepted}
            ), gone AS (
                DELETE FROM sis.membership_changes d
                WHERE d.run_id = %(run)s AND d.op = 'delete'
                  AND EXISTS (SELECT 1 FROM relinked k WHERE
                              k.entity = 'person' AND d.idtype = 1 AND k.new_key = d.member_id
                              OR k.entity = 'group' AND k.new_key IN (d.group_id,
                                 CASE WHEN d.idtype = 2 THEN d.member_id END))
                  AND EXISTS (SELECT 1 FROM sis.membership_changes s
                              WHERE s.run_id = %(run)s AND s.op = 'create' AND {match})
                RETURNING d.*
            )
            SELECT * FROM gone
            """
        ).format(accepted=sql.SQL(_ACCEPTED), match=key_match(MEMBERSHIP, "s", "d")),
        params,
    )
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
        ).format(changed=changed_columns(MEMBERSHIP), match=key_match(MEMBERSHIP, "s", "c")),
        params,
    )


def rename_in_state(cur, run_id: int, customer: str) -> int:
    """The commit's first step: the run's accepted pairs' old keys take their new keys in the
    current state (a membership the new key already has there is left to the change set).
    Returns how many persons and groups were renamed."""
    params = {"run": run_id, "customer": customer}
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM sis.relinks r WHERE {_ACCEPTED})", params)
    if not cur.fetchone()[0]:
        return 0  # the memberships are not scanned for keys that no run renames
    renamed = 0
    for entity in (PERSON, GROUP):
        cur.execute(
            sql.SQL(
                "UPDATE {state} c SET sourcedid = r.new_key FROM sis.relinks r"
                " WHERE {accepted} AND r.entity = {name} AND c.customer = %(customer)s"
                " AND c.sourcedid = r.old_key"
            ).format(
                state=entity.table, accepted=sql.SQL(_ACCEPTED), name=sql.Literal(entity.name)
            ),
            params,
        )
        renamed += cur.rowcount
    for column, kind, only in (
        ("member_id", "person", "m.idtype = 1"),
        ("group_id", "group", "true"),
        ("member_id", "group", "m.idtype = 2"),
    ):
        clash = sql.SQL(
            "EXISTS (SELECT 1 FROM sis.memberships x WHERE x.customer = m.customer AND {})"
        ).format(
            sql.SQL(" AND ").join(
                sql.SQL("x.{k} = {v}").format(
                    k=sql.Identifier(k),
                    v=sql.SQL("r.new_key") if k == column else sql.Identifier("m", k),
                )
                for k in MEMBERSHIP.key
            )
        )
        cur.execute(
            sql.SQL(
                "DELETE FROM sis.memberships m USING sis.relinks r WHERE {accepted}"
                " AND r.entity = {name} AND m.customer = %(customer)s AND {only}"
                " AND m.{column} = r.old_key AND {clash}"
            ).format(
                accepted=sql.SQL(_ACCEPTED),
                name=sql.Literal(kind),
                only=sql.SQL(only),
                column=sql.Identifier(column),
                clash=clash,
            ),
            params,
        )
        cur.execute(
            sql.SQL(
                "UPDATE sis.memberships m SET {column} = r.new_key FROM sis.relinks r"
                " WHERE {accepted} AND r.entity = {name} AND m.customer = %(customer)s"
                " AND {only} AND m.{column} = r.old_key"
            ).format(
                column=sql.Identifier(column),
                accepted=sql.SQL(_ACCEPTED),
                name=sql.Literal(kind),
                only=sql.SQL(only),
            ),
            params,
        )
    return renamed
