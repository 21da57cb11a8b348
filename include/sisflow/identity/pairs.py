"""Pairing a key that leaves with a key that arrives, on evidence that is not the key.

A person is paired on the same username, the same national id (``<userid
useridtype="personNIN">``), or the same email together with the same name and birth date (an
email alone is not enough: siblings share a parent's). Each kind of evidence is independent of
the others; two or more that agree make a pair certain, one makes it a question for a person.
A group is paired when its code, name, school and term are all the same (and its type): at a
rollover the terms differ, so last year's groups never pair with next year's.

Both sides are given as SQL (the run's deleted and created rows, or the current state and a new
export), and the pairs are found by joins on temporary tables of keys: set-based, so a large
municipality's rollover costs a fraction of a second.
"""

from __future__ import annotations

from psycopg2 import sql

from ..entities import username_sql

PERSON_EVIDENCE = ("username", "national id", "email+name+birth date")
GROUP_EVIDENCE = ("code", "name", "school", "term")
#: the userid types that carry a national id
NATIONAL_ID_TYPES = ["personNIN"]
#: a group hierarchy is at most this deep (owner, school, level, class, teaching group)
_DEPTH = 6


def _person_keys(source: sql.Composable, table: str) -> sql.Composed:
    """``table`` (temporary): (sourcedid, key, value) for every key a person of ``source`` forms.
    ``source``: a SELECT of sourcedid, userids, email, given, fn, family, bday."""
    return sql.SQL(
        """
        DROP TABLE IF EXISTS {table};
        CREATE TEMP TABLE {table} ON COMMIT DROP AS
        WITH p AS (SELECT sourcedid, userids, email, COALESCE(given, fn) AS given, family, bday
                   FROM ({source}) x)
        SELECT sourcedid, 'username' AS key, lower(btrim(u)) AS value
        FROM (SELECT sourcedid, """
        + username_sql("userids")
        + """ AS u FROM p) named WHERE btrim(u) <> ''
        UNION ALL
        SELECT sourcedid, 'national id', btrim(e->>1)
        FROM p, jsonb_array_elements(COALESCE(p.userids, '[]'::jsonb)) e
        WHERE e->>0 = ANY(%(nin)s) AND btrim(e->>1) <> ''
        UNION ALL
        SELECT sourcedid, 'email+name+birth date',
               lower(btrim(email)) || '|'
               || lower(regexp_replace(btrim(given || ' ' || family), '\\s+', ' ', 'g'))
               || '|' || bday::text
        FROM p WHERE btrim(email) <> '' AND given IS NOT NULL AND family IS NOT NULL
          AND bday IS NOT NULL;
        ANALYZE {table};
        """
    ).format(table=sql.Identifier(table), source=source)


def _found(cur) -> None:
    cur.execute("DROP TABLE IF EXISTS pg_temp._identity_found")
    cur.execute(
        "CREATE TEMP TABLE _identity_found (old_key text, new_key text, evidence text[])"
        " ON COMMIT DROP"
    )


def persons(cur, leaving: sql.Composable, arriving: sql.Composable, params: dict) -> int:
    """Every (leaving, arriving) pair of persons that agree on at least one kind of evidence,
    into ``_identity_found`` (temporary, with the evidence in :data:`PERSON_EVIDENCE`'s
    order); how many."""
    _found(cur)
    if not _both(cur, leaving, arriving, params):
        return 0
    params = {**params, "nin": NATIONAL_ID_TYPES, "order": list(PERSON_EVIDENCE)}
    cur.execute(_person_keys(leaving, "_identity_old"), params)
    cur.execute(_person_keys(arriving, "_identity_new"), params)
    cur.execute(
        "INSERT INTO _identity_found"
        " SELECT old_key, new_key, array_agg(key ORDER BY array_position(%(order)s, key))"
        " FROM (SELECT DISTINCT o.sourcedid AS old_key, n.sourcedid AS new_key, o.key"
        "       FROM _identity_old o JOIN _identity_new n ON n.key = o.key AND n.value = o.value"
        "       WHERE o.sourcedid <> n.sourcedid) agree"
        " GROUP BY old_key, new_key",
        params,
    )
    return cur.rowcount


def _group_shapes(source: sql.Composable, table: str) -> sql.Composed:
    """``table`` (temporary): each group of ``source`` with its shape (type, code, name and
    term in one value, so that pairs are found by a hash join) and its parent; a group that
    is its own parent (the top of a hierarchy) has none."""
    return sql.SQL(
        """
        DROP TABLE IF EXISTS {table};
        CREATE TEMP TABLE {table} ON COMMIT DROP AS
        SELECT sourcedid,
               concat_ws('|', COALESCE(grouptype, '-'), short, COALESCE(long, '-'),
                         COALESCE(begin_date::text, '-'), COALESCE(end_date::text, '-')) AS shape,
               CASE WHEN parent_id = sourcedid THEN NULL ELSE parent_id END AS parent
        FROM ({source}) x WHERE short IS NOT NULL;
        ANALYZE {table};
        """
    ).format(table=sql.Identifier(table), source=source)


def groups(cur, leaving: sql.Composable, arriving: sql.Composable, params: dict) -> int:
    """Every (leaving, arriving) pair of groups with the same type, code, name, school and term,
    into ``_identity_found``; how many.
    A school re-keyed with its classes: a class pairs once its school has (its parent is then
    the school's new key), so the hierarchy is walked down a level per pass. Every pass is a
    hash join on the shape and the parent: an SIS that re-keyed all 40,000 groups of a large
    municipality, each code in every school, costs seconds, not a product of the two."""
    _found(cur)
    if not _both(cur, leaving, arriving, params):
        return 0
    cur.execute(_group_shapes(leaving, "_identity_old_groups"), params)
    cur.execute(_group_shapes(arriving, "_identity_new_groups"), params)
    cur.execute("DROP TABLE IF EXISTS _identity_groups")
    cur.execute("CREATE TEMP TABLE _identity_groups (old_key text, new_key text) ON COMMIT DROP")
    query = """
        INSERT INTO _identity_groups
        SELECT DISTINCT o.sourcedid, n.sourcedid
        FROM (SELECT o.sourcedid, o.shape, COALESCE(p.new_key, o.parent, '') AS parent
              FROM _identity_old_groups o
              LEFT JOIN _identity_groups p ON p.old_key = o.parent) o
        JOIN _identity_new_groups n ON n.shape = o.shape AND COALESCE(n.parent, '') = o.parent
        WHERE o.sourcedid <> n.sourcedid
          AND NOT EXISTS (SELECT 1 FROM _identity_groups f
                          WHERE f.old_key = o.sourcedid AND f.new_key = n.sourcedid)
    """
    for _ in range(_DEPTH):
        cur.execute(query)
        if cur.rowcount == 0:
            break
    cur.execute(
        "INSERT INTO _identity_found SELECT old_key, new_key, %s FROM _identity_groups",
        (list(GROUP_EVIDENCE),),
    )
    return cur.rowcount


def _both(cur, leaving: sql.Composable, arriving: sql.Composable, params: dict) -> bool:
    """Whether a key leaves and a key arrives at all (a first import: none leaves)."""
    cur.execute(sql.SQL("SELECT EXISTS ({}) AND EXISTS ({})").format(leaving, arriving), params)
    return cur.fetchone()[0]


def run_sides(entity: str) -> tuple[sql.Composed, sql.Composed]:
    """A run's two sides: the keys its change set deletes (that the current state holds: a
    deletion released after a delay-delete window left the state long ago) and creates."""
    table = sql.Identifier("sis", f"{entity}_changes")
    state = sql.Identifier("sis", f"{entity}s")
    leaving = sql.SQL(
        "SELECT ch.* FROM {changes} ch WHERE ch.run_id = %(run)s AND ch.op = 'delete'"
        " AND EXISTS (SELECT 1 FROM {state} c WHERE c.customer = %(customer)s"
        " AND c.sourcedid = ch.sourcedid)"
    ).format(changes=table, state=state)
    arriving = sql.SQL(
        "SELECT ch.* FROM {changes} ch WHERE ch.run_id = %(run)s AND ch.op = 'create'"
    ).format(changes=table)
    return leaving, arriving
