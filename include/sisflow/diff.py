"""Change sets: what a staged run creates, updates and deletes in the customer's current state.

Set-based: one INSERT ... SELECT per entity and kind of change, joining the run's staging
table to the current state. For a full file, what is absent was removed; for a delta (or
event) file, ``recstatus`` decides, and deleting a person or group also deletes the
memberships that name it. A change row carries the new values; an update also lists the
columns that changed, for the report and the filter; a delete carries the values it had.
"""

from __future__ import annotations

from psycopg2 import sql

from . import deferred, unchanged
from .entities import (
    ENTITIES,
    GROUP,
    MEMBERSHIP,
    PERSON,
    Entity,
    idents,
    key_match,
)

OPS = ("create", "update", "delete")
#: change rows of one entity from which a run's change table statistics are read again: the
#: planner guesses about one row for a run it has not seen, and a join planned on that guess
#: as a nested loop costs the run's rows times the other side's (a large customer's first
#: import read that way spent half a minute in one query); an ANALYZE costs a fraction of a
#: second, and a day's change of a large customer stays under it
BIG_RUN = 20_000
#: staged rows of one entity from which a day's change rows are selected in parallel (see
#: :func:`_full_changes`); Postgres starts no worker for a table under 8 MB, about as many
PARALLEL_ROWS = 50_000


def changed_columns(entity: Entity) -> sql.Composed:
    """The names of the values that differ between the staged row ``s`` and the state's ``c``
    (an array of them, with NULL where one is equal)."""
    return sql.SQL(", ").join(
        sql.SQL("CASE WHEN {s} IS DISTINCT FROM {c} THEN {name} END").format(
            s=sql.Identifier("s", v), c=sql.Identifier("c", v), name=sql.Literal(v)
        )
        for v in entity.values
    )


def _delta_creates_and_updates(entity: Entity, staged: sql.Identifier) -> sql.Composed:
    first_key = sql.Identifier("c", entity.key[0])
    changed = changed_columns(entity)
    return sql.SQL(
        """
        INSERT INTO {changes} (run_id, op, changed, {columns})
        SELECT %(run)s,
               CASE WHEN {first_key} IS NULL THEN 'create' ELSE 'update' END,
               CASE WHEN {first_key} IS NOT NULL
                    THEN array_remove(ARRAY[{changed}]::text[], NULL) END,
               {s_columns}
        FROM {staged} s
        LEFT JOIN {table} c ON c.customer = %(customer)s AND {match}
        WHERE s.recstatus IS DISTINCT FROM 3
          AND ({first_key} IS NULL OR ROW({s_values}) IS DISTINCT FROM ROW({c_values}))
        """
    ).format(
        changes=entity.changes,
        columns=idents(entity.columns),
        first_key=first_key,
        changed=changed,
        s_columns=idents(entity.columns, "s"),
        staged=staged,
        table=entity.table,
        match=key_match(entity, "c", "s"),
        s_values=idents(entity.values, "s"),
        c_values=idents(entity.values, "c"),
    )


#: in a full file, what is absent was removed; but not what the file held in a form that was
#: skipped for an error (``sis.kept``): a bad value never removes good data. A kept row
#: without a ``record_id`` is a record whose key could not be read: it could be any record of
#: its entity, so none of them is removed (and a member without one: no member of its group)
_NOT_KEPT = {
    "person": "NOT EXISTS (SELECT 1 FROM sis.kept k WHERE k.run_id = %(run)s"
    " AND k.entity = 'person' AND (k.record_id = c.sourcedid OR k.record_id IS NULL))",
    "group": "NOT EXISTS (SELECT 1 FROM sis.kept k WHERE k.run_id = %(run)s"
    " AND k.entity = 'group' AND (k.record_id = c.sourcedid OR k.record_id IS NULL))",
    "membership": "NOT EXISTS (SELECT 1 FROM sis.kept k WHERE k.run_id = %(run)s AND ("
    " k.entity = 'group' AND (k.record_id IS NULL OR k.record_id IN (c.group_id,"
    " CASE WHEN c.idtype = 2 THEN c.member_id END))"
    " OR k.entity = 'person' AND c.idtype = 1"
    " AND (k.record_id IS NULL OR k.record_id = c.member_id)"
    " OR k.entity = 'membership' AND (k.record_id IS NULL"
    " OR k.record_id = c.group_id"
    " AND (k.member_id IS NULL OR k.member_id = c.member_id))))",
}


def _delta_deletes(entity: Entity, staged: sql.Identifier) -> sql.Composed:
    source = sql.SQL(
        "FROM {table} c JOIN {staged} s ON {match}"
        " WHERE c.customer = %(customer)s AND s.recstatus = 3"
    )
    return sql.SQL(
        "INSERT INTO {changes} (run_id, op, {columns}) SELECT %(run)s, 'delete', {c_columns} "
    ).format(
        changes=entity.changes,
        columns=idents(entity.columns),
        c_columns=idents(entity.columns, "c"),
    ) + source.format(table=entity.table, staged=staged, match=key_match(entity, "c", "s"))


def _full_changes(
    entity: Entity,
    staged: sql.Identifier,
    *,
    kept: bool,
    unchanged_of: int | None = None,
    parallel: bool = False,
) -> sql.Composed:
    """A full file's creates, updates and deletes in one pass: the staged file and the
    customer's state joined once (a hash full join), instead of once for creates and updates
    and once again for what is absent. ``kept``: whether the run kept anything for an error;
    when it kept nothing, a rollover's million absent rows are not each looked up there
    (1.3 s). ``unchanged_of``: the run took records as unchanged (:mod:`sisflow.unchanged`),
    so the state's rows of those records are left out of the join: they are what the
    records would have staged.

    ``parallel``: the change is small beside what is joined (a large municipality's day:
    eleven thousand member changes out of two joins of some 360,000 rows each). Postgres
    runs a join in parallel only for a query that writes nothing or makes a table, so the
    change rows are selected into a temporary table, on the server's other cores, and
    copied from there. A run that changes about all it joins (a first import, a rollover)
    inserts them straight: copying a million rows twice costs more than the join; and a
    small customer's join is too small for workers, so a table made for it is a cost."""
    select = _full_changes_select(entity, staged, kept=kept, unchanged_of=unchanged_of)
    if not parallel:
        return (
            sql.SQL("INSERT INTO {changes} (run_id, op, changed, {columns}) ").format(
                changes=entity.changes, columns=idents(entity.columns)
            )
            + select
        )
    scratch = sql.Identifier(f"_changes_{entity.name}")
    return sql.SQL(
        "CREATE TEMP TABLE {scratch} ON COMMIT DROP AS {select};"
        " INSERT INTO {changes} (run_id, op, changed, {columns})"
        " SELECT run_id, op, changed, {columns} FROM {scratch};"
        " DROP TABLE {scratch}"
    ).format(scratch=scratch, select=select, changes=entity.changes, columns=idents(entity.columns))


def _full_changes_select(
    entity: Entity, staged: sql.Identifier, *, kept: bool, unchanged_of: int | None
) -> sql.Composed:
    """The change rows of :func:`_full_changes`, as columns named after the change table's."""
    s_key, c_key = sql.Identifier("s", entity.key[0]), sql.Identifier("c", entity.key[0])
    changed = changed_columns(entity)
    either = sql.SQL(", ").join(
        sql.SQL("CASE WHEN {s_key} IS NULL THEN {c} ELSE {s} END AS {col}").format(
            s_key=s_key,
            c=sql.Identifier("c", col),
            s=sql.Identifier("s", col),
            col=sql.Identifier(col),
        )
        for col in entity.columns
    )
    return sql.SQL(
        """
        SELECT %(run)s::bigint AS run_id,
               CASE WHEN {s_key} IS NULL THEN 'delete'
                    WHEN {c_key} IS NULL THEN 'create' ELSE 'update' END AS op,
               CASE WHEN {s_key} IS NOT NULL AND {c_key} IS NOT NULL
                    THEN array_remove(ARRAY[{changed}]::text[], NULL) END AS changed,
               {either}
        FROM {staged} s
        FULL JOIN (SELECT {columns} FROM {table} c
                   WHERE customer = %(customer)s AND {not_unchanged}) c ON {match}
        WHERE CASE WHEN {s_key} IS NULL THEN {not_kept}
                   WHEN {c_key} IS NULL THEN TRUE
                   ELSE ROW({s_values}) IS DISTINCT FROM ROW({c_values}) END
        """
    ).format(
        columns=idents(entity.columns),
        s_key=s_key,
        c_key=c_key,
        changed=changed,
        either=either,
        staged=staged,
        table=entity.table,
        match=key_match(entity, "c", "s"),
        not_kept=sql.SQL(_NOT_KEPT[entity.name] if kept else "TRUE"),
        not_unchanged=unchanged.state_rows(entity, unchanged_of),
        s_values=idents(entity.values, "s"),
        c_values=idents(entity.values, "c"),
    )


_CASCADE = sql.SQL(
    """
    INSERT INTO sis.membership_changes (run_id, op, group_id, member_id, idtype, roletype,
                                        subrole, status, begin_date, end_date, extension)
    SELECT %(run)s, 'delete', m.group_id, m.member_id, m.idtype, m.roletype,
           m.subrole, m.status, m.begin_date, m.end_date, m.extension
    FROM sis.memberships m
    WHERE m.customer = %(customer)s
      AND (m.group_id IN (SELECT sourcedid FROM sis.group_changes
                          WHERE run_id = %(run)s AND op = 'delete')
           OR m.idtype = 1 AND m.member_id IN (SELECT sourcedid FROM sis.person_changes
                                               WHERE run_id = %(run)s AND op = 'delete')
           OR m.idtype = 2 AND m.member_id IN (SELECT sourcedid FROM sis.group_changes
                                               WHERE run_id = %(run)s AND op = 'delete'))
      AND NOT EXISTS (SELECT 1 FROM sis.membership_changes x
                      WHERE x.run_id = %(run)s AND x.op = 'delete' AND x.group_id = m.group_id
                        AND x.member_id = m.member_id AND x.idtype = m.idtype
                        AND x.roletype = m.roletype)
    """
)


def compute(
    cur, run_id: int, customer: str, file_type: str, *, release_deferred: bool = True
) -> dict[str, dict[str, int]]:
    """Write the run's change rows (replacing any earlier attempt) and return the counts.

    ``release_deferred``: outside a delay-delete window, deletions deferred by earlier runs
    are released into this change set."""
    delta = file_type != "full"
    params = {"run": run_id, "customer": customer}
    cur.execute("SET LOCAL work_mem = '256MB'")  # hash joins of a million rows stay in memory
    for entity in ENTITIES:
        cur.execute(sql.SQL("DELETE FROM {} WHERE run_id = %s").format(entity.changes), (run_id,))
    cur.execute("SELECT EXISTS (SELECT 1 FROM sis.kept WHERE run_id = %s)", (run_id,))
    kept = cur.fetchone()[0]
    unchanged_of = run_id if not delta and unchanged.exists(cur, run_id) else None
    if unchanged_of is not None:
        # the planner takes every joined row of a day for one the parallel workers hand
        # back, and so a parallel join for dearer than it is: few of them are changes
        cur.execute("SET LOCAL parallel_tuple_cost = 0.01")
    for entity in (PERSON, GROUP, MEMBERSHIP):
        staged = entity.staged(run_id)
        if delta:
            cur.execute(_delta_creates_and_updates(entity, staged), params)
            cur.execute(_delta_deletes(entity, staged), params)
        else:
            parallel = unchanged_of is not None and _rows(cur, staged) >= PARALLEL_ROWS
            cur.execute(
                _full_changes(
                    entity, staged, kept=kept, unchanged_of=unchanged_of, parallel=parallel
                ),
                params,
            )
    if delta:
        cur.execute(_CASCADE, params)
    if release_deferred:
        deferred.release(cur, run_id, customer)
    result = counts(cur, run_id)
    # the commit and the apply join these rows: see BIG_RUN
    for entity in ENTITIES:
        if sum(result[entity.name].values()) >= BIG_RUN:
            cur.execute(sql.SQL("ANALYZE {}").format(entity.changes))
    return result


def _rows(cur, table: sql.Identifier) -> float:
    """A staged table's rows as its ANALYZE at staging counted them."""
    cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table.as_string(cur),))
    return cur.fetchone()[0]


def counts(cur, run_id: int) -> dict[str, dict[str, int]]:
    result = {e.name: dict.fromkeys(OPS, 0) for e in ENTITIES}
    for entity in ENTITIES:
        cur.execute(
            sql.SQL("SELECT op, count(*) FROM {} WHERE run_id = %s GROUP BY op").format(
                entity.changes
            ),
            (run_id,),
        )
        for op, n in cur.fetchall():
            result[entity.name][op] = n
    return result
