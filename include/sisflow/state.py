"""The customer's current state in the import database, moved forward by a run's change set.

Only the change rows are used (never the staging tables), so what is committed is exactly
what was counted, judged by the filter and reported.
"""

from __future__ import annotations

from psycopg2 import sql

from . import partitions
from .entities import GROUP, MEMBERSHIP, PERSON, idents, key_match


def apply_changes(cur, run_id: int, customer: str, counts: dict | None = None,
                  base: dict | None = None) -> None:
    """Move the state forward by the run's change rows; ``counts`` and ``base`` (the run's
    change counts and the state's size before) say whether the statistics need a new look."""
    params = {"run": run_id, "customer": customer}
    for entity in (MEMBERSHIP, GROUP, PERSON):  # children before parents
        cur.execute(
            sql.SQL(
                "DELETE FROM {table} c USING {changes} ch WHERE ch.run_id = %(run)s"
                " AND ch.op = 'delete' AND c.customer = %(customer)s AND {match}"
            ).format(table=entity.table, changes=entity.changes,
                     match=key_match(entity, "c", "ch")),
            params,
        )
    for entity in (PERSON, GROUP, MEMBERSHIP):  # parents before children
        cur.execute(
            sql.SQL(
                "UPDATE {table} c SET ({values}, run_id) = ({ch_values}, %(run)s)"
                " FROM {changes} ch WHERE ch.run_id = %(run)s AND ch.op = 'update'"
                " AND c.customer = %(customer)s AND {match}"
            ).format(table=entity.table, values=idents(entity.values),
                     ch_values=idents(entity.values, "ch"), changes=entity.changes,
                     match=key_match(entity, "c", "ch")),
            params,
        )
        cur.execute(
            sql.SQL(
                "INSERT INTO {table} (customer, {columns}, run_id)"
                " SELECT %(customer)s, {columns}, %(run)s FROM {changes}"
                " WHERE run_id = %(run)s AND op = 'create'"
            ).format(table=entity.table, columns=idents(entity.columns), changes=entity.changes),
            params,
        )
    # keep the planner's picture of the customer's state true after a big change: the next
    # diff joins against it, and stale estimates turn its hash joins into nested loops
    if counts is not None:
        changed = {e: sum(c.values()) for e, c in counts.items()}
        partitions.analyze(cur, customer, changed, base or {})


def snapshot(cur, customer: str) -> dict[str, set[tuple]]:
    """The whole current state as sets of text rows (key and values), for tests and small checks."""
    result = {}
    for entity in (PERSON, GROUP, MEMBERSHIP):
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE customer = %s").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c))
                                   for c in entity.columns),
                entity.table,
            ),
            (customer,),
        )
        result[entity.name] = set(cur.fetchall())
    return result


def forget(cur, customer: str) -> None:
    """Remove a customer's runs, change sets, staging tables, current state, school years and
    attached sync keys (demo and benchmark resets)."""
    from .staging import drop

    cur.execute("SELECT id FROM sis.runs WHERE customer = %s", (customer,))
    for (run_id,) in cur.fetchall():
        drop(cur, run_id)
    for entity in (MEMBERSHIP, GROUP, PERSON):
        cur.execute(sql.SQL("DELETE FROM {} WHERE customer = %s").format(entity.table), (customer,))
    # the tables keyed by run without a foreign key (their per-row triggers cost too much);
    # the others go with the runs (ON DELETE CASCADE)
    for table in (*(e.changes for e in (MEMBERSHIP, GROUP, PERSON)),
                  sql.Identifier("sis", "apply_outcomes"), sql.Identifier("sis", "kept")):
        cur.execute(sql.SQL("DELETE FROM {} WHERE run_id IN"
                            " (SELECT id FROM sis.runs WHERE customer = %s)").format(table),
                    (customer,))
    cur.execute("DELETE FROM sis.runs WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.customer_leases WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.deferred_deletions WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.school_years WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.sync_key_attachments WHERE customer = %s", (customer,))
