"""Delay delete: deletions kept back from the LMS during a window, and let go after it.

In a delay-delete window a run's deletions (persons, groups, memberships) reach the import
database, but not the LMS: :func:`defer` keeps them in ``sis.deferred_deletions``. The first run
after the window takes every waiting deletion into its change set (:func:`release`), so the
filter judges them with the rest, even when the file itself did not change (:func:`waiting`
forbids the unchanged short-circuit then). Its apply settles them (:func:`settle`): each is
applied exactly once, and one whose object came back in the meantime is dropped.
"""

from __future__ import annotations

from psycopg2 import sql

from .entities import BY_NAME, ENTITIES, Entity, deferred_match, idents


def waiting(cur, customer: str) -> int:
    """How many deferred deletions of the customer wait to be applied."""
    cur.execute(
        "SELECT count(*) FROM sis.deferred_deletions WHERE customer = %s"
        " AND applied_run IS NULL AND dropped_run IS NULL",
        (customer,),
    )
    return cur.fetchone()[0]


def defer(cur, run_id: int, customer: str, entity_name: str) -> int:
    """Keep the run's deletions of one entity back from the LMS; returns how many."""
    entity = BY_NAME[entity_name]
    key_object = sql.SQL(", ").join(
        sql.SQL("{}, {}").format(sql.Literal(k), sql.Identifier("ch", k)) for k in entity.key
    )
    key_text = sql.SQL(" || '/' || ").join(
        sql.SQL("{}::text").format(sql.Identifier("ch", k)) for k in entity.key
    )
    params = {"run": run_id, "customer": customer}
    cur.execute(
        sql.SQL("""
        INSERT INTO sis.deferred_deletions (customer, entity, record_key, deferred_run)
        SELECT %(customer)s, {name}, jsonb_build_object({key_object}), %(run)s
        FROM {changes} ch WHERE ch.run_id = %(run)s AND ch.op = 'delete'
        ON CONFLICT DO NOTHING
        """).format(name=sql.Literal(entity.name), key_object=key_object, changes=entity.changes),
        params,
    )
    cur.execute(
        sql.SQL("""
        INSERT INTO sis.apply_outcomes (run_id, entity, record_key, outcome, detail)
        SELECT %(run)s, {name}, {key_text}, 'deferred', 'delay delete'
        FROM {changes} ch WHERE ch.run_id = %(run)s AND ch.op = 'delete'
        """).format(name=sql.Literal(entity.name), key_text=key_text, changes=entity.changes),
        params,
    )
    return cur.rowcount


def _release(entity: Entity) -> sql.Composed:
    casts = {"idtype": "smallint"}
    keys = sql.SQL(", ").join(
        sql.SQL("(d.record_key->>{})::{}").format(sql.Literal(k), sql.SQL(casts.get(k, "text")))
        for k in entity.key
    )
    return sql.SQL(
        """
        INSERT INTO {changes} (run_id, op, {key_columns}, released_from)
        SELECT DISTINCT ON (d.record_key) %(run)s, 'delete', {keys}, d.deferred_run
        FROM sis.deferred_deletions d
        WHERE d.customer = %(customer)s AND d.entity = {entity}
          AND d.applied_run IS NULL AND d.dropped_run IS NULL
          AND NOT EXISTS (SELECT 1 FROM {table} c
                          WHERE c.customer = %(customer)s AND {match_current})
          AND NOT EXISTS (SELECT 1 FROM {changes} x
                          WHERE x.run_id = %(run)s AND {match_changes})
        ORDER BY d.record_key, d.deferred_run
        """
    ).format(
        changes=entity.changes,
        key_columns=idents(entity.key),
        keys=keys,
        entity=sql.Literal(entity.name),
        table=entity.table,
        match_current=deferred_match(entity, "c"),
        match_changes=deferred_match(entity, "x"),
    )


def release(cur, run_id: int, customer: str) -> None:
    """Put every waiting deletion into the run's change set (not those whose object is back,
    or that the run changes itself)."""
    for entity in ENTITIES:
        cur.execute(_release(entity), {"run": run_id, "customer": customer})


def settle(cur, run_id: int, customer: str) -> dict[str, int]:
    """After the run's deletions reached the LMS: the released ones are applied, once; those
    whose object came back are dropped. Returns the counts."""
    params = {"run": run_id, "customer": customer}
    counts = {"released": 0, "dropped": 0}
    for entity in ENTITIES:
        names = {
            "entity": sql.Literal(entity.name),
            "changes": entity.changes,
            "table": entity.table,
        }
        cur.execute(
            sql.SQL("""
            UPDATE sis.deferred_deletions d SET applied_run = %(run)s
            FROM {changes} x
            WHERE d.customer = %(customer)s AND d.entity = {entity}
              AND d.applied_run IS NULL AND d.dropped_run IS NULL
              AND x.run_id = %(run)s AND x.op = 'delete' AND x.released_from IS NOT NULL
              AND {match}
            """).format(match=deferred_match(entity, "x"), **names),
            params,
        )
        counts["released"] += cur.rowcount
        cur.execute(
            sql.SQL("""
            UPDATE sis.deferred_deletions d SET dropped_run = %(run)s
            WHERE d.customer = %(customer)s AND d.entity = {entity}
              AND d.applied_run IS NULL AND d.dropped_run IS NULL
              AND EXISTS (SELECT 1 FROM {table} c
                          WHERE c.customer = %(customer)s AND {match})
            """).format(match=deferred_match(entity, "c"), **names),
            params,
        )
        counts["dropped"] += cur.rowcount
    return counts
