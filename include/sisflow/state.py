"""The customer's current state in the import database, moved forward by a run's change set.

Only the change rows are used (never the staging tables), so what is committed is exactly
what was counted, judged by the filter and reported.
"""

from __future__ import annotations

from psycopg2 import sql

from . import partitions
from .entities import ENTITIES, GROUP, MEMBERSHIP, PERSON, Entity, idents, key_match

#: a run that deletes or updates at least this share of a partition's rows (a rollover) has the
#: partition rebuilt rather than changed row by row
REBUILD_SHARE = 0.5


def apply_changes(
    cur, run_id: int, customer: str, counts: dict | None = None, base: dict | None = None
) -> None:
    """Move the state forward by the run's change rows; ``counts`` and ``base`` (the run's
    change counts and the state's size before) say whether a partition is rebuilt and whether
    the statistics need a new look."""
    params = {"run": run_id, "customer": customer}
    cur.execute("SET LOCAL work_mem = '256MB'")  # hash joins of a million rows stay in memory
    _keep_values_before(cur, params, counts)
    rebuilt = {e for e in ENTITIES if _most_goes(e, counts, base)}
    for entity in rebuilt:
        _rebuild(cur, entity, customer, params)
    for entity in (MEMBERSHIP, GROUP, PERSON):  # children before parents
        if entity in rebuilt:
            continue
        cur.execute(
            sql.SQL(
                "DELETE FROM {table} c USING {changes} ch WHERE ch.run_id = %(run)s"
                " AND ch.op = 'delete' AND c.customer = %(customer)s AND {match}"
            ).format(
                table=entity.table, changes=entity.changes, match=key_match(entity, "c", "ch")
            ),
            params,
        )
    for entity in (PERSON, GROUP, MEMBERSHIP):  # parents before children
        if entity in rebuilt:
            continue
        cur.execute(
            sql.SQL(
                "UPDATE {table} c SET ({values}, run_id) = ({ch_values}, %(run)s)"
                " FROM {changes} ch WHERE ch.run_id = %(run)s AND ch.op = 'update'"
                " AND c.customer = %(customer)s AND {match}"
            ).format(
                table=entity.table,
                values=idents(entity.values),
                ch_values=idents(entity.values, "ch"),
                changes=entity.changes,
                match=key_match(entity, "c", "ch"),
            ),
            params,
        )
        # created rows in key order, as a rebuild writes them: the primary key then takes
        # them in runs of neighbours, not at a page of its own for each (a first import)
        cur.execute(
            sql.SQL(
                "INSERT INTO {table} (customer, {columns}, run_id)"
                " SELECT %(customer)s, {columns}, %(run)s FROM {changes}"
                " WHERE run_id = %(run)s AND op = 'create' ORDER BY {key}"
            ).format(
                table=entity.table,
                columns=idents(entity.columns),
                changes=entity.changes,
                key=idents(entity.key),
            ),
            params,
        )
    # keep the planner's picture of the customer's state true after a big change: the next
    # diff joins against it, and stale estimates turn its hash joins into nested loops
    if counts is not None:
        changed = {e: sum(c.values()) for e, c in counts.items()}
        partitions.analyze(cur, customer, changed, base or {})


def _keep_values_before(cur, params: dict, counts: dict | None) -> None:
    """Each updated record's values before the run, kept with its change row: an undo of the
    run puts them back (the change row holds the new values only)."""
    for entity in ENTITIES:
        if counts is not None and not counts.get(entity.name, {}).get("update"):
            continue
        cur.execute(
            sql.SQL(
                "UPDATE {changes} ch SET before = to_jsonb(c) - 'customer' - 'run_id'"
                " FROM {table} c WHERE ch.run_id = %(run)s AND ch.op = 'update'"
                " AND c.customer = %(customer)s AND {match}"
            ).format(
                changes=entity.changes, table=entity.table, match=key_match(entity, "c", "ch")
            ),
            params,
        )


def _most_goes(entity: Entity, counts: dict | None, base: dict | None) -> bool:
    if not counts or not base or not base.get(entity.name):
        return False
    leaving = counts[entity.name]["delete"] + counts[entity.name]["update"]
    return leaving >= REBUILD_SHARE * base[entity.name]


def _rebuild(cur, entity: Entity, customer: str, params: dict) -> None:
    """The customer's partition made anew: the rows the run leaves alone are set aside, the
    partition is emptied (TRUNCATE) and refilled with them and the run's updated and created
    rows, in key order (its index then grows at its right edge). At a rollover a million
    memberships leave and a million come: deleting them one by one and inserting the new
    ones into an index still holding the old ones was slower, and left the partition twice
    its size until a vacuum.

    TRUNCATE takes the partition for itself until the commit ends (the customer's lease keeps
    the customer's other runs away; readers of the partition wait), and it is undone with the
    transaction like any change."""
    part = partitions.name(entity, customer)
    columns = idents(entity.columns)
    cur.execute(
        sql.SQL(
            "CREATE TEMPORARY TABLE _unchanged AS SELECT {columns}, run_id FROM {part} c"
            " WHERE NOT EXISTS (SELECT 1 FROM {changes} ch WHERE ch.run_id = %(run)s"
            " AND ch.op IN ('delete', 'update') AND {match})"
        ).format(
            columns=columns, part=part, changes=entity.changes, match=key_match(entity, "c", "ch")
        ),
        params,
    )
    cur.execute(sql.SQL("TRUNCATE {}").format(part))
    cur.execute(
        sql.SQL(
            "INSERT INTO {part} (customer, {columns}, run_id)"
            " SELECT %(customer)s, {columns}, run_id FROM _unchanged"
            " UNION ALL SELECT %(customer)s, {columns}, %(run)s FROM {changes}"
            " WHERE run_id = %(run)s AND op IN ('create', 'update') ORDER BY {key}"
        ).format(part=part, columns=columns, changes=entity.changes, key=idents(entity.key)),
        params,
    )
    cur.execute("DROP TABLE _unchanged")


def snapshot(cur, customer: str) -> dict[str, set[tuple]]:
    """The whole current state as sets of text rows (key and values), for tests and small checks."""
    result = {}
    for entity in (PERSON, GROUP, MEMBERSHIP):
        cur.execute(
            sql.SQL("SELECT {} FROM {} WHERE customer = %s").format(
                sql.SQL(", ").join(
                    sql.SQL("{}::text").format(sql.Identifier(c)) for c in entity.columns
                ),
                entity.table,
            ),
            (customer,),
        )
        result[entity.name] = set(cur.fetchall())
    return result


def forget(cur, customer: str) -> None:
    """Remove a customer's runs, change sets, staging tables, current state, school years,
    attached sync keys, identity changes and the LMS journal (demo and benchmark resets)."""
    from .staging import drop

    cur.execute("SELECT id FROM sis.runs WHERE customer = %s", (customer,))
    for (run_id,) in cur.fetchall():
        drop(cur, run_id)
    for entity in (MEMBERSHIP, GROUP, PERSON):
        cur.execute(sql.SQL("DELETE FROM {} WHERE customer = %s").format(entity.table), (customer,))
    # the tables keyed by run without a foreign key (their per-row triggers cost too much);
    # the others go with the runs (ON DELETE CASCADE)
    for table in (
        *(e.changes for e in (MEMBERSHIP, GROUP, PERSON)),
        sql.Identifier("sis", "apply_outcomes"),
        sql.Identifier("sis", "kept"),
    ):
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE run_id IN (SELECT id FROM sis.runs WHERE customer = %s)"
            ).format(table),
            (customer,),
        )
    cur.execute("DELETE FROM sis.runs WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.customer_leases WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.deferred_deletions WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.school_years WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.sync_key_attachments WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.relinks WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.lms_journal WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.drift_repairs WHERE customer = %s", (customer,))
    cur.execute("DELETE FROM sis.readiness_checks WHERE customer = %s", (customer,))
