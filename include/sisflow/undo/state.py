"""The import database's side of an undo: the undone run's change set turned around.

The undo run gets a change set of its own, the inverse of the undone run's: a create becomes
a delete, a delete a create (its row carries the values it had), an update an update back to
the values kept when the run was committed. It is committed like any change set, so the next
file is diffed against the state before the undone run, and the undo's own change set can be
turned around again. A record a later run changed since is left alone (a conflict). Deletions
the undone run released after a delay-delete window changed the LMS only: they are not turned
around here, they wait to be released again.
"""

from __future__ import annotations

from psycopg2 import sql

from .. import diff, state
from ..entities import ENTITIES, idents, key_match

#: the scope of a one-school undo, per entity: the key column and its table of keys
_SCOPE = {
    "person": ("sourcedid", "_undo_scope_persons"),
    "group": ("sourcedid", "_undo_scope_groups"),
    "membership": ("group_id", "_undo_scope_groups"),
}


def turn_around(cur, customer: str, undone: int, undo_run: int, *, scoped: bool) -> dict:
    """Write the undo run's change set and commit it to the current state; the counts of its
    change set and of the records left alone (``conflicts``)."""
    params = {"customer": customer, "undone": undone, "undo": undo_run}
    conflicts = {}
    for entity in ENTITIES:
        values = sql.SQL(", ").join(
            sql.SQL("r.{c}").format(c=sql.Identifier(c)) for c in entity.values
        )
        scope = sql.SQL("")
        if scoped:
            column, table = _SCOPE[entity.name]
            scope = sql.SQL(" AND ch.{} IN (SELECT key FROM {})").format(
                sql.Identifier(column), sql.Identifier(table)
            )
        # written straight from the join, not through a CTE read twice (a rollover's two
        # million rows were stored aside first); what was not free is counted apart
        cur.execute(
            sql.SQL(
                """
                INSERT INTO {changes} (run_id, op, changed, {columns})
                SELECT %(undo)s, op, changed, {columns} FROM (
                    SELECT CASE ch.op WHEN 'create' THEN 'delete' ELSE 'create' END AS op,
                           ch.changed, {ch_columns},
                           CASE ch.op WHEN 'delete' THEN c.customer IS NULL
                                      ELSE c.run_id IS NOT DISTINCT FROM %(undone)s END AS free
                    FROM {changes} ch
                    LEFT JOIN {table} c ON c.customer = %(customer)s AND {match}
                    WHERE ch.run_id = %(undone)s AND ch.op IN ('create', 'delete')
                      AND ch.released_from IS NULL {scope}
                    UNION ALL
                    SELECT 'update', ch.changed, {keys}, {values},
                           c.run_id IS NOT DISTINCT FROM %(undone)s
                    FROM {changes} ch
                    CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, ch.before) r
                    LEFT JOIN {table} c ON c.customer = %(customer)s AND {match}
                    WHERE ch.run_id = %(undone)s AND ch.op = 'update' {scope}
                ) inverse
                WHERE free
                """
            ).format(
                keys=idents(entity.key, "ch"),
                values=values,
                changes=entity.changes,
                table=entity.table,
                match=key_match(entity, "c", "ch"),
                scope=scope,
                columns=idents(entity.columns),
                ch_columns=idents(entity.columns, "ch"),
            ),
            params,
        )
        written = cur.rowcount
        cur.execute(
            sql.SQL(
                "SELECT count(*) FROM {changes} ch WHERE ch.run_id = %(undone)s"
                " AND (ch.op = 'update' OR ch.op IN ('create', 'delete')"
                " AND ch.released_from IS NULL) {scope}"
            ).format(changes=entity.changes, scope=scope),
            params,
        )
        conflicts[entity.name] = cur.fetchone()[0] - written
    counts = diff.counts(cur, undo_run)
    cur.execute(
        "SELECT (SELECT count(*) FROM sis.persons WHERE customer = %(c)s),"
        " (SELECT count(*) FROM sis.groups WHERE customer = %(c)s),"
        " (SELECT count(*) FROM sis.memberships WHERE customer = %(c)s)",
        {"c": customer},
    )
    base = dict(zip(("person", "group", "membership"), cur.fetchone(), strict=True))
    state.apply_changes(cur, undo_run, customer, counts, base)
    return {"counts": counts, "base_counts": base, "conflicts": conflicts}


def redone(cur, run_id: int, undone: int) -> dict[str, int]:
    """How many of the run's changes are changes that the undone run made too (the same
    record, the same operation): per entity."""
    found = {}
    for entity in ENTITIES:
        cur.execute(
            sql.SQL(
                "SELECT count(*) FROM {changes} n JOIN {changes} o ON o.run_id = %(undone)s"
                " AND o.op = n.op AND {match} WHERE n.run_id = %(run)s"
            ).format(changes=entity.changes, match=key_match(entity, "o", "n")),
            {"run": run_id, "undone": undone},
        )
        found[entity.name] = cur.fetchone()[0]
    return found
