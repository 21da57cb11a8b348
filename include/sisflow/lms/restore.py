"""Undoing a run on the reference site: its journal read backwards.

Each object and member the run changed goes back to what it was before the run, if it is
still what the run left; if it is not (a later run or a person changed it since) it is a
conflict and stays as it is. What the run created is taken away when nothing uses it since
(an account someone logged into, a course with participants of its own, a unit with members,
children or courses, a term with courses is kept). The restore is journaled as the undo's
own run, so an undo can be undone the same way.

Everything is set-based on temporary tables: ``_undo_objects`` (one row per user, unit, term
or course the run changed) and ``_undo_members`` (one row per participant or unit member).
With a school, the caller has filled ``_undo_scope_groups`` and ``_undo_scope_persons`` with
the sync keys in scope.
"""

from __future__ import annotations

from .postgres_site import image, objects_journaled

TABLES = {"user": "lms.users", "term": "lms.terms", "unit": "lms.units", "course": "lms.courses"}

#: the columns an undo puts back (a login is not the run's to take back)
RESTORED = {
    "user": (
        "sync_key",
        "username",
        "first_name",
        "last_name",
        "email",
        "profile",
        "birth_date",
        "trashed_at",
    ),
    "term": ("sync_key", "name", "begins", "ends", "created_by_integration", "archived_at"),
    "unit": ("sync_key", "kind", "name", "parent_id", "parent_key", "removed_at"),
    "course": (
        "sync_key",
        "title",
        "code",
        "unit_id",
        "term_id",
        "state",
        "created_by_integration",
        "archived_at",
    ),
}

#: why an object the run created is kept: what uses it since
_IN_USE = {
    "course": [
        ("EXISTS (SELECT 1 FROM lms.participants p WHERE p.course_id = x.id)", "has participants"),
    ],
    "unit": [
        ("EXISTS (SELECT 1 FROM lms.unit_members m WHERE m.unit_id = x.id)", "has members"),
        ("EXISTS (SELECT 1 FROM lms.units c WHERE c.parent_id = x.id)", "has units under it"),
        ("EXISTS (SELECT 1 FROM lms.courses c WHERE c.unit_id = x.id)", "has courses"),
    ],
    "term": [("EXISTS (SELECT 1 FROM lms.courses c WHERE c.term_id = x.id)", "has courses")],
    "user": [
        ("x.last_login IS NOT NULL", "has been logged into"),
        ("EXISTS (SELECT 1 FROM lms.participants p WHERE p.user_id = x.id)", "is a participant"),
        ("EXISTS (SELECT 1 FROM lms.unit_members m WHERE m.user_id = x.id)", "is a unit member"),
    ],
}

_SAME = "(now_image - 'last_login') IS NOT DISTINCT FROM (after - 'last_login')"


def restore(cur, site: str, undone: int, undo_run: int, *, scoped: bool) -> dict:
    """Put back what run ``undone`` changed on ``site``, journaled as run ``undo_run``;
    counts per kind and verdict (restored, removed, kept, conflict)."""
    params = {"site": site, "undone": undone, "journal": undo_run}
    _plan_objects(cur, params, scoped)
    _plan_members(cur, params, scoped)
    for kind in ("user", "term", "unit", "course"):
        _put_back(cur, kind, params)
    _put_back_members(cur, params, scoped)
    for kind in ("course", "unit", "term", "user"):  # users of a removed course first
        _take_away(cur, kind, params)
    cur.execute(
        "SELECT kind, verdict, count(*) FROM _undo_objects GROUP BY 1, 2"
        " UNION ALL SELECT kind, COALESCE(verdict, CASE WHEN before <> after THEN 'restored'"
        " END), count(*) FROM _undo_members GROUP BY 1, 2"
    )
    counts: dict = {}
    for kind, verdict, n in cur.fetchall():
        counts.setdefault(kind, {})[verdict or "unchanged"] = n
    return counts


def _plan_objects(cur, params: dict, scoped: bool) -> None:
    cur.execute("DROP TABLE IF EXISTS pg_temp._undo_objects")
    cur.execute(
        """
        CREATE TEMP TABLE _undo_objects ON COMMIT DROP AS
        SELECT kind, object_id,
               COALESCE((array_agg(sync_key ORDER BY id DESC))[1],
                        (array_agg(before ORDER BY id))[1] ->> 'sync_key') AS sync_key,
               (array_agg(before ORDER BY id))[1] AS before,
               (array_agg(after ORDER BY id DESC))[1] AS after,
               NULL::jsonb AS now_image, NULL::text AS verdict, NULL::text AS why
        FROM sis.lms_journal WHERE run_id = %(undone)s AND user_ids IS NULL
        GROUP BY kind, object_id
        """,
        params,
    )
    cur.execute("ANALYZE _undo_objects")
    for kind, table in TABLES.items():
        cur.execute(
            f"UPDATE _undo_objects o SET now_image = {image('x')} FROM {table} x"
            f" WHERE o.kind = '{kind}' AND x.id = o.object_id",
            params,
        )
    if scoped:
        cur.execute(
            """
            DELETE FROM _undo_objects o WHERE CASE o.kind
                WHEN 'user' THEN NOT EXISTS (SELECT 1 FROM _undo_scope_persons s
                    WHERE s.key IN (o.sync_key, o.before->>'sync_key', o.after->>'sync_key'))
                WHEN 'term' THEN true
                ELSE NOT EXISTS (SELECT 1 FROM _undo_scope_groups s
                    WHERE s.key IN (o.sync_key, o.before->>'sync_key', o.after->>'sync_key'))
            END
            """
        )
    cur.execute(
        f"""
        UPDATE _undo_objects o SET verdict = 'conflict', why = COALESCE(
            'changed since by run ' || (
                SELECT min(j.run_id) FROM sis.lms_journal j WHERE j.customer = %(site)s
                  AND j.kind = o.kind AND j.object_id = o.object_id
                  AND j.run_id > %(undone)s AND j.run_id <> %(journal)s),
            'changed by hand since')
        WHERE NOT {_SAME}
        """,
        params,
    )


def _plan_members(cur, params: dict, scoped: bool) -> None:
    """One row per member the run changed: the state before its first change in the run and
    after its last, and the state now."""
    scope = ""
    if scoped:
        scope = (
            " AND EXISTS (SELECT 1 FROM _undo_scope_groups s WHERE s.key = CASE g.kind"
            " WHEN 'participant' THEN"
            " (SELECT c.sync_key FROM lms.courses c WHERE c.id = g.group_id)"
            " ELSE (SELECT u.sync_key FROM lms.units u WHERE u.id = g.group_id) END)"
        )
    for table in ("_undo_member_changes", "_undo_members"):
        cur.execute(f"DROP TABLE IF EXISTS pg_temp.{table}")
    cur.execute("SET LOCAL work_mem = '256MB'")
    # a run journals a group's members in one row per change it made to them: a group in one
    # row (most courses of a rollover) has each member once, with that row's before and after;
    # only the members of a group in several rows are grouped by member
    changes = """
        WITH journal AS (
            SELECT id, kind, object_id, user_ids, roles, member_before, member_after,
                   count(*) OVER (PARTITION BY kind, object_id) AS rows_of_group
            FROM sis.lms_journal WHERE run_id = %(undone)s AND user_ids IS NOT NULL
        )
        SELECT j.kind, j.object_id AS group_id, m.user_id, m.role, j.id AS first_id,
               j.id AS last_id, j.member_before AS before, j.member_after AS after
        FROM journal j CROSS JOIN LATERAL unnest(j.user_ids, j.roles) AS m(user_id, role)
        WHERE j.rows_of_group = 1
        UNION ALL
        SELECT g.*, f.member_before, l.member_after
        FROM (SELECT j.kind, j.object_id, m.user_id, m.role, min(j.id), max(j.id)
              FROM journal j
              CROSS JOIN LATERAL unnest(j.user_ids, j.roles) AS m(user_id, role)
              WHERE j.rows_of_group > 1
              GROUP BY 1, 2, 3, 4) g
        JOIN sis.lms_journal f ON f.id = g.min
        JOIN sis.lms_journal l ON l.id = g.max
    """
    # a table of its own, with statistics: the planner cannot guess what unnest() gives
    cur.execute(f"CREATE TEMP TABLE _undo_member_changes ON COMMIT DROP AS {changes}", params)
    cur.execute("ANALYZE _undo_member_changes")
    cur.execute(
        f"""
        CREATE TEMP TABLE _undo_members ON COMMIT DROP AS
        WITH planned AS (
            SELECT g.kind, g.group_id, g.user_id, g.role, g.before, g.after,
                   CASE WHEN COALESCE(p.synced, u.synced) IS NULL THEN 'absent'
                        WHEN COALESCE(p.synced, u.synced) THEN 'synced' ELSE 'manual' END
                       AS now_state
            FROM _undo_member_changes g
            LEFT JOIN lms.participants p ON g.kind = 'participant' AND p.course_id = g.group_id
                 AND p.user_id = g.user_id AND p.role = g.role
            LEFT JOIN lms.unit_members u ON g.kind = 'unit_member' AND u.unit_id = g.group_id
                 AND u.user_id = g.user_id AND u.role = g.role
            WHERE true {scope}
        )
        SELECT *, CASE WHEN now_state <> after THEN 'conflict' END AS verdict FROM planned
        """,
        params,
    )
    cur.execute("ANALYZE _undo_members")


def _put_back(cur, kind: str, params: dict) -> None:
    """Objects the run changed (not created) back to their row before the run."""
    table, columns = TABLES[kind], RESTORED[kind]
    names = ", ".join(columns)
    values = ", ".join(f"r.{c}" for c in columns)
    changed = "" if kind == "term" else ", updated_at = now()"  # a term has no such column
    cur.execute(
        f"""
        WITH back AS (
            UPDATE {table} x SET ({names}) = ({values}){changed}
            FROM _undo_objects o
            CROSS JOIN LATERAL jsonb_populate_record(NULL::{table}, o.before) r
            WHERE o.kind = '{kind}' AND o.verdict IS NULL AND o.before IS NOT NULL
              AND o.now_image IS NOT NULL AND x.id = o.object_id
            RETURNING x.id, x.sync_key, o.now_image AS before, {image("x")} AS after
        ), again AS (  -- taken away by an undo that is undone now: made again, same id
            INSERT INTO {table} AS n
            SELECT (jsonb_populate_record(NULL::{table},
                                          o.before || jsonb_build_object('updated_at', now()))).*
            FROM _undo_objects o
            WHERE o.kind = '{kind}' AND o.verdict IS NULL AND o.before IS NOT NULL
              AND o.now_image IS NULL
            RETURNING n.id, n.sync_key, NULL::jsonb AS before, {image("n")} AS after
        ), {objects_journaled(kind, "back", "again")}
        UPDATE _undo_objects o SET verdict = 'restored' WHERE o.kind = '{kind}'
          AND o.verdict IS NULL AND o.before IS NOT NULL
        """,
        params,
    )


#: what the run did to a member, by what it was before the run and what the run left: each
#: is undone by a statement of its own (taken away, flagged back, put back)
_MEMBER_STEPS = {
    "created": "m.before = 'absent'",
    "flagged": "m.before <> 'absent' AND m.after <> 'absent'",
    "removed": "m.before <> 'absent' AND m.after = 'absent'",
}


def _put_back_members(cur, params: dict, scoped: bool) -> None:
    ok = "m.verdict IS NULL AND m.before <> m.after"
    # a rollover's members are nearly all added or removed: a step with nothing to do is
    # skipped rather than joined against a million participants
    cur.execute(
        "SELECT kind, "
        + ", ".join(f"count(*) FILTER (WHERE {test})" for test in _MEMBER_STEPS.values())
        + f" FROM _undo_members m WHERE {ok} GROUP BY kind"
    )
    todo = {kind: dict(zip(_MEMBER_STEPS, n, strict=True)) for kind, *n in cur.fetchall()}
    for kind, table, group in (
        ("participant", "lms.participants", "course_id"),
        ("unit_member", "lms.unit_members", "unit_id"),
    ):
        steps = todo.get(kind, {})
        key = f"t.{group} = m.group_id AND t.user_id = m.user_id AND t.role = m.role"
        if steps.get("created"):
            cur.execute(
                f"DELETE FROM {table} t USING _undo_members m WHERE m.kind = '{kind}' AND {ok}"
                f" AND {_MEMBER_STEPS['created']} AND {key}"
            )
        if steps.get("flagged"):
            cur.execute(
                f"UPDATE {table} t SET synced = m.before = 'synced' FROM _undo_members m"
                f" WHERE m.kind = '{kind}' AND {ok} AND {_MEMBER_STEPS['flagged']} AND {key}"
            )
        if steps.get("removed"):
            cur.execute(
                f"INSERT INTO {table} ({group}, user_id, role, synced)"
                f" SELECT group_id, user_id, role, before = 'synced' FROM _undo_members m"
                f" WHERE m.kind = '{kind}' AND {ok} AND {_MEMBER_STEPS['removed']}"
            )
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM _undo_members WHERE verdict = 'conflict')"
        " OR EXISTS (SELECT 1 FROM _undo_member_changes WHERE first_id <> last_id)"
    )
    if not scoped and not cur.fetchone()[0]:
        # every member changed once and went back: the run's own rows, turned around
        cur.execute(
            """
            INSERT INTO sis.lms_journal (run_id, customer, kind, object_id, user_ids, roles,
                                         member_before, member_after)
            SELECT %(journal)s, %(site)s, kind, object_id, user_ids, roles, member_after,
                   member_before
            FROM sis.lms_journal WHERE run_id = %(undone)s AND user_ids IS NOT NULL
              AND member_before <> member_after
            ORDER BY id DESC
            """,
            params,
        )
        return
    cur.execute(
        """
        INSERT INTO sis.lms_journal (run_id, customer, kind, object_id, user_ids, roles,
                                     member_before, member_after)
        SELECT %(journal)s, %(site)s, kind, group_id, array_agg(user_id), array_agg(role),
               after, before
        FROM _undo_members m WHERE m.verdict IS NULL AND m.before <> m.after
        GROUP BY kind, group_id, after, before
        """,
        params,
    )


def _take_away(cur, kind: str, params: dict) -> None:
    """What the run created, unless something uses it since. Units go leaves first: a unit
    is taken away once the units under it are."""
    table = TABLES[kind]
    candidates = (
        f"o.kind = '{kind}' AND o.verdict IS NULL AND o.before IS NULL AND x.id = o.object_id"
    )
    while True:
        # each test a clause of its own: NOT EXISTS alone becomes an anti-join, under an OR
        # it is a subquery run once per candidate (4,000 units of a rollover times its
        # 60,000 courses)
        used = " AND ".join(f"NOT ({test})" for test, _ in _IN_USE[kind])
        cur.execute(
            f"""
            WITH gone AS (
                DELETE FROM {table} x USING _undo_objects o
                WHERE {candidates} AND {used}
                RETURNING x.id, x.sync_key, o.now_image AS before, NULL::jsonb AS after
            ), {objects_journaled(kind, "gone")},
            marked AS (
                UPDATE _undo_objects o SET verdict = 'removed' FROM gone
                WHERE o.kind = '{kind}' AND o.object_id = gone.id
            )
            SELECT count(*) FROM gone
            """,
            params,
        )
        if kind != "unit" or not cur.fetchone()[0]:
            break
    for test, why in _IN_USE[kind]:
        cur.execute(
            f"UPDATE _undo_objects o SET verdict = 'kept', why = %(why)s FROM {table} x"
            f" WHERE {candidates} AND ({test})",
            {**params, "why": why},
        )
