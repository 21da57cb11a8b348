"""The reference LMS: a customer's site kept in Postgres (schema ``lms``).

Each batch is copied into a temporary table and applied with one or two set-based statements.
The site writes through the caller's cursor, so the apply step commits the LMS changes and its
own progress together.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator

from psycopg2 import sql

from ..db.copy import row_writer
from ..db.stream import streamed
from .adapter import (
    ACCOUNT_FIELDS,
    CourseRow,
    LmsSite,
    MemberRow,
    Outcome,
    TermRow,
    UnitRow,
    UserRow,
)

_BATCH_TABLES = {
    "users": ("sync_key", "username", "first_name", "last_name", "email", "profile", "birth_date"),
    "units": ("sync_key", "kind", "name", "parent_key"),
    "terms": ("sync_key", "name", "begins", "ends"),
    "courses": ("sync_key", "title", "code", "unit_key", "term_key"),
    "members": ("group_key", "user_key", "role"),
    "keys": ("sync_key",),
    "pairs": ("old_key", "new_key"),
}


#: the journal's name for the objects of each table
_KINDS = {"lms.users": "user", "lms.units": "unit", "lms.terms": "term", "lms.courses": "course"}

#: new rows of one statement after which a table's statistics are read again, when they are
#: at least this share of the rows the statistics knew
_MANY_NEW_ROWS = 1_000
_NEW_SHARE = 0.1


#: an object's row as the journal keeps it (its ``updated_at`` says nothing undo needs)
def image(alias: str) -> str:
    return f"to_jsonb({alias}) - 'updated_at'"


def objects_journaled(kind: str, *changed: str) -> str:
    """A CTE that journals what the CTEs ``changed`` returned (id, sync_key, before, after)."""
    rows = " UNION ALL ".join(f"SELECT id, sync_key, before, after FROM {c}" for c in changed)
    return (
        f"journaled_{kind} AS (INSERT INTO sis.lms_journal"
        " (run_id, customer, kind, object_id, sync_key, before, after)"
        f" SELECT %(journal)s::bigint, %(site)s, '{kind}', id, sync_key, before, after"
        f" FROM ({rows}) c WHERE %(journal)s::bigint IS NOT NULL)"
    )


def members_journaled(kind: str, changed: str, before: str, after: str) -> str:
    """A CTE that journals the members the CTE ``changed`` returned (group_id, user_id, role),
    one row per course or unit."""
    return (
        f"journaled_{changed} AS (INSERT INTO sis.lms_journal (run_id, customer, kind,"
        " object_id, user_ids, roles, member_before, member_after)"
        f" SELECT %(journal)s::bigint, %(site)s, '{kind}', group_id, array_agg(user_id),"
        f" array_agg(role), '{before}', '{after}' FROM {changed}"
        " WHERE %(journal)s::bigint IS NOT NULL GROUP BY group_id)"
    )


class PostgresSite(LmsSite):
    """``journal``: the run whose changes these are; each write then records, in the same
    statement, what it changed and what was there before (``sis.lms_journal``). Without one
    (an operator's act with a record of its own) nothing is journaled."""

    def __init__(self, cur, site: str, journal: int | None = None):
        self.cur = cur
        self.site = site
        self.journal = journal

    # -- batches into temporary tables -------------------------------------------------------

    def _load(self, name: str, rows) -> sql.Identifier:
        table = sql.Identifier(f"_batch_{name}")
        columns = _BATCH_TABLES[name]
        self.cur.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DROP").format(
                table,
                sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns),
            )
        )
        self.cur.execute(sql.SQL("TRUNCATE {}").format(table))
        # a temporary file, not memory: a StringIO read back holds four bytes a character
        with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as buffer:
            if len(columns) > 1:  # rows of two columns and more are written by csv in C
                csv.writer(buffer).writerows(rows)
            else:  # a lone value may be COPY's end-of-data marker (see db.copy)
                writerow = row_writer(buffer)
                for row in rows:
                    writerow((row,) if isinstance(row, str) else row)
            buffer.seek(0)
            self.cur.copy_expert(
                sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv)").format(table).as_string(self.cur),
                buffer,
            )
        # without statistics the planner takes a 50,000-row batch for a handful of rows and
        # joins it to a million participants row by row; its size and a small sample say
        # enough (the default sample of 30,000 rows is a cost for every batch)
        self.cur.execute("SET LOCAL default_statistics_target = 10")
        self.cur.execute(sql.SQL("ANALYZE {}").format(table))
        self.cur.execute("RESET default_statistics_target")
        return table

    def _run(self, statement: str, table: sql.Identifier | None = None, **params):
        query = sql.SQL(statement).format(batch=table) if table is not None else statement
        self.cur.execute(query, {"site": self.site, "journal": self.journal, **params})

    def _analyze_after_many_new_rows(self, table: str, created: int) -> None:
        """After many new rows (a site's first import or a new school year): ANALYZE, so the
        next statements are planned for them. Until autovacuum gets there, the planner takes a
        new site for empty, and the units' parent link became a nested loop over 5,800 units
        squared (6 s instead of 0.1 s). Only when they are a share of the table, as
        autovacuum's own rule has it: the table is every site's, and a small site's first
        import beside hundreds of others changes its statistics little, while its ANALYZE
        reads a sample of all of them and waits for any other site's."""
        if created < _MANY_NEW_ROWS:
            return
        self.cur.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,))
        if created >= _NEW_SHARE * max(self.cur.fetchone()[0], 0):
            self.cur.execute(f"ANALYZE {table}")

    def _unmatched(self, entity: str, statement: str, table, outcome: str, detail: str):
        self._run(statement, table)
        return [Outcome(entity, key, outcome, detail) for (key,) in self.cur.fetchall()]

    def _upsert(
        self, batch, table: str, kind: str, updated: str, created: str, prelude: str = ""
    ) -> int:
        """An update of the rows whose key the batch has (``updated``: the SET and WHERE of
        an ``UPDATE {table} x ... FROM ..., {table} o``, ``o`` the row before) and an insert
        of the others (``created``: an ``INSERT INTO {table} AS n ...``), journaled; how many
        were created.

        The insert leaves the keys there already by ``ON CONFLICT DO NOTHING``, not by a
        ``NOT EXISTS`` on the table: planned for a site's empty table, that can become a
        nested loop that scans the table again for every row of the batch, rows inserted by
        the statement itself included (quadratic in a first import's users)."""
        self._run(
            f"""
            WITH {prelude}
            updated AS ({updated} RETURNING x.id, x.sync_key, {image("o")} AS before,
                                              {image("x")} AS after),
            created AS ({created} RETURNING n.id, n.sync_key, NULL::jsonb AS before,
                                             {image("n")} AS after),
            {objects_journaled(kind, "updated", "created")}
            SELECT count(*) FROM created
            """,
            batch,
        )
        created_rows = self.cur.fetchone()[0]
        self._analyze_after_many_new_rows(table, created_rows)
        return created_rows

    # -- users ---------------------------------------------------------------------------------

    def upsert_users(self, rows: Iterable[UserRow]) -> list[Outcome]:
        self._upsert(
            self._load("users", rows),
            "lms.users",
            "user",
            """
            UPDATE lms.users x SET
                username = b.username, first_name = b.first_name, last_name = b.last_name,
                email = b.email, profile = b.profile, birth_date = b.birth_date::date,
                trashed_at = NULL, updated_at = now()
            FROM {batch} b, lms.users o
            WHERE x.site = %(site)s AND x.sync_key = b.sync_key AND o.id = x.id
              AND (o.username, o.first_name, o.last_name, o.email, o.profile, o.birth_date,
                   o.trashed_at)
                  IS DISTINCT FROM (b.username, b.first_name, b.last_name, b.email, b.profile,
                   b.birth_date::date, NULL)
            """,
            """
            INSERT INTO lms.users AS n (site, sync_key, username, first_name, last_name, email,
                                        profile, birth_date)
            SELECT %(site)s, sync_key, username, first_name, last_name, email, profile,
                   birth_date::date
            FROM {batch} b WHERE true ON CONFLICT (site, sync_key) DO NOTHING
            """,
        )
        return []

    def _relink(self, tables: tuple[str, ...], entity: str, pairs) -> list[Outcome]:
        batch = self._load("pairs", pairs)
        for table in tables:
            kind = _KINDS[table]
            self._run(
                f"""
                WITH relinked AS (
                    UPDATE {table} x SET sync_key = b.new_key, updated_at = now()
                    FROM {{batch}} b, {table} o
                    WHERE x.site = %(site)s AND x.sync_key = b.old_key AND o.id = x.id
                      AND NOT EXISTS (SELECT 1 FROM {table} n
                                      WHERE n.site = %(site)s AND n.sync_key = b.new_key)
                    RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
                ), {objects_journaled(kind, "relinked")}
                SELECT 1
                """,
                batch,
            )
        if "lms.units" in tables:  # the children's link by key follows
            self._run(
                f"""
                WITH followed AS (
                    UPDATE lms.units x SET parent_key = b.new_key FROM {{batch}} b, lms.units o
                    WHERE x.site = %(site)s AND x.parent_key = b.old_key AND o.id = x.id
                    RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
                ), {objects_journaled("unit", "followed")}
                SELECT 1
                """,
                batch,
            )
        taken = " OR ".join(
            f"EXISTS (SELECT 1 FROM {t} x WHERE x.site = %(site)s AND x.sync_key = b.{{key}})"
            for t in tables
        )
        failed = self._unmatched(
            entity,
            f"SELECT b.old_key FROM {{batch}} b WHERE ({taken.format(key='old_key')})"
            f" AND ({taken.format(key='new_key')})",
            batch,
            "failed",
            "both the old and the new sync key are taken",
        )
        missing = self._unmatched(
            entity,
            f"SELECT b.old_key FROM {{batch}} b WHERE NOT ({taken.format(key='old_key')})"
            f" AND NOT ({taken.format(key='new_key')})",
            batch,
            "skipped",
            "nothing in the LMS has the old sync key",
        )
        return failed + missing

    def relink_users(self, pairs: Iterable[tuple[str, str]]) -> list[Outcome]:
        return self._relink(("lms.users",), "person", pairs)

    def relink_groups(self, pairs: Iterable[tuple[str, str]]) -> list[Outcome]:
        return self._relink(("lms.courses", "lms.units"), "group", pairs)

    def trash_users(self, keys: Iterable[str]) -> list[Outcome]:
        batch = self._load("keys", keys)
        self._run(
            f"""
            WITH trashed AS (
                UPDATE lms.users x SET trashed_at = now(), updated_at = now()
                FROM {{batch}} b, lms.users o
                WHERE x.site = %(site)s AND x.sync_key = b.sync_key AND x.trashed_at IS NULL
                  AND o.id = x.id
                RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
            ), {objects_journaled("user", "trashed")}
            SELECT 1
            """,
            batch,
        )
        return self._unmatched(
            "person",
            "SELECT b.sync_key FROM {batch} b WHERE NOT EXISTS (SELECT 1 FROM lms.users u"
            " WHERE u.site = %(site)s AND u.sync_key = b.sync_key)",
            batch,
            "skipped",
            "no account with this sync key",
        )

    # -- units and terms -----------------------------------------------------------------------

    def upsert_units(self, rows: Iterable[UnitRow]) -> list[Outcome]:
        batch = self._load("units", rows)
        self._upsert(
            batch,
            "lms.units",
            "unit",
            """
            UPDATE lms.units x SET kind = b.kind, name = b.name, parent_key = b.parent_key,
                                   removed_at = NULL, updated_at = now()
            FROM {batch} b, lms.units o
            WHERE x.site = %(site)s AND x.sync_key = b.sync_key AND o.id = x.id
              AND (o.kind, o.name, o.parent_key, o.removed_at)
                  IS DISTINCT FROM (b.kind, b.name, b.parent_key, NULL)
            """,
            """
            INSERT INTO lms.units AS n (site, sync_key, kind, name, parent_key)
            SELECT %(site)s, sync_key, kind, name, parent_key FROM {batch} b
            WHERE true ON CONFLICT (site, sync_key) DO NOTHING
            """,
        )
        # parents are linked by key, whatever order the batches came in
        self._run(
            f"""
            WITH linked AS (
                UPDATE lms.units x SET parent_id = p.id FROM lms.units p, lms.units o
                WHERE x.site = %(site)s AND p.site = %(site)s AND p.sync_key = x.parent_key
                  AND x.parent_id IS DISTINCT FROM p.id AND o.id = x.id
                RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
            ), {objects_journaled("unit", "linked")}
            SELECT 1
            """
        )
        return []

    def upsert_terms(self, rows: Iterable[TermRow]) -> list[Outcome]:
        self._upsert(
            self._load("terms", rows),
            "lms.terms",
            "term",
            """
            UPDATE lms.terms x SET name = b.name, begins = b.begins::date, ends = b.ends::date,
                                   archived_at = NULL
            FROM {batch} b, lms.terms o
            WHERE x.site = %(site)s AND x.sync_key = b.sync_key AND o.id = x.id
              AND (o.name, o.begins, o.ends, o.archived_at)
                  IS DISTINCT FROM (b.name, b.begins::date, b.ends::date, NULL)
            """,
            """
            INSERT INTO lms.terms AS n (site, sync_key, name, begins, ends,
                                        created_by_integration)
            SELECT %(site)s, sync_key, name, begins::date, ends::date, true FROM {batch} b
            WHERE true ON CONFLICT (site, sync_key) DO NOTHING
            """,
        )
        return []

    def archive_terms_except(self, keys: Iterable[str]) -> int:
        batch = self._load("keys", keys)
        self._run(
            f"""
            WITH archived AS (
                UPDATE lms.terms x SET archived_at = now() FROM lms.terms o
                WHERE x.site = %(site)s AND x.created_by_integration AND x.archived_at IS NULL
                  AND o.id = x.id
                  AND NOT EXISTS (SELECT 1 FROM {{batch}} b WHERE b.sync_key = x.sync_key)
                RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
            ), {objects_journaled("term", "archived")}
            SELECT count(*) FROM archived
            """,
            batch,
        )
        return self.cur.fetchone()[0]

    # -- courses -------------------------------------------------------------------------------

    def upsert_courses(self, rows: Iterable[CourseRow]) -> list[Outcome]:
        self._upsert(
            self._load("courses", rows),
            "lms.courses",
            "course",
            # an archived course stays archived and out of the hierarchy: only a person
            # restores it
            """
            UPDATE lms.courses x SET
                title = r.title, code = r.code, term_id = r.term_id,
                unit_id = CASE WHEN x.state = 'archived' THEN x.unit_id ELSE r.unit_id END,
                updated_at = now()
            FROM resolved r, lms.courses o
            WHERE x.site = %(site)s AND x.sync_key = r.sync_key AND o.id = x.id
              AND (o.title, o.code, o.term_id, o.unit_id)
                  IS DISTINCT FROM (r.title, r.code, r.term_id,
                                    CASE WHEN o.state = 'archived' THEN o.unit_id
                                         ELSE r.unit_id END)
            """,
            """
            INSERT INTO lms.courses AS n (site, sync_key, title, code, unit_id, term_id,
                                          created_by_integration)
            SELECT %(site)s, r.sync_key, r.title, r.code, r.unit_id, r.term_id, true
            FROM resolved r WHERE true ON CONFLICT (site, sync_key) DO NOTHING
            """,
            prelude="""
            resolved AS (
                SELECT b.sync_key, b.title, b.code, u.id AS unit_id, t.id AS term_id
                FROM {batch} b
                LEFT JOIN lms.units u ON u.site = %(site)s AND u.sync_key = b.unit_key
                LEFT JOIN lms.terms t ON t.site = %(site)s AND t.sync_key = b.term_key
            ),
            """,
        )
        return []

    def retire_groups(self, keys: Iterable[str], *, archive_courses: bool) -> list[Outcome]:
        batch = self._load("keys", keys)
        self._run(
            f"""
            WITH retired AS (
                UPDATE lms.courses x SET
                    unit_id = NULL,
                    state = CASE WHEN %(archive)s AND x.created_by_integration
                                 THEN 'archived' ELSE x.state END,
                    archived_at = CASE WHEN %(archive)s AND x.created_by_integration
                                       THEN now() ELSE x.archived_at END,
                    updated_at = now()
                FROM {{batch}} b, lms.courses o
                WHERE x.site = %(site)s AND x.sync_key = b.sync_key AND x.state = 'active'
                  AND o.id = x.id
                RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
            ), made_manual AS (
                UPDATE lms.participants p SET synced = false
                FROM retired WHERE p.course_id = retired.id AND p.synced
                RETURNING p.course_id AS group_id, p.user_id, p.role
            ), {objects_journaled("course", "retired")},
            {members_journaled("participant", "made_manual", "synced", "manual")}
            SELECT 1
            """,
            batch,
            archive=archive_courses,
        )
        self._run(
            f"""
            WITH removed AS (
                UPDATE lms.units x SET removed_at = now(), updated_at = now()
                FROM {{batch}} b, lms.units o
                WHERE x.site = %(site)s AND x.sync_key = b.sync_key AND x.removed_at IS NULL
                  AND o.id = x.id
                RETURNING x.id, x.sync_key, {image("o")} AS before, {image("x")} AS after
            ), members_out AS (
                DELETE FROM lms.unit_members m USING removed
                WHERE m.unit_id = removed.id AND m.synced
                RETURNING m.unit_id AS group_id, m.user_id, m.role
            ), {objects_journaled("unit", "removed")},
            {members_journaled("unit_member", "members_out", "synced", "absent")}
            SELECT 1
            """,
            batch,
        )
        return self._unmatched(
            "group",
            "SELECT b.sync_key FROM {batch} b WHERE NOT EXISTS (SELECT 1 FROM lms.courses c"
            " WHERE c.site = %(site)s AND c.sync_key = b.sync_key) AND NOT EXISTS (SELECT 1"
            " FROM lms.units u WHERE u.site = %(site)s AND u.sync_key = b.sync_key)",
            batch,
            "skipped",
            "neither a course nor a unit in the LMS",
        )

    # -- memberships ---------------------------------------------------------------------------

    def add_participants(self, rows: Iterable[MemberRow]) -> list[Outcome]:
        return self._add_members(rows, "participants", "course_id", "lms.courses", "course")

    def add_unit_members(self, rows: Iterable[MemberRow]) -> list[Outcome]:
        return self._add_members(rows, "unit_members", "unit_id", "lms.units", "unit")

    def _add_members(
        self, rows: Iterable[MemberRow], table: str, group_column: str, groups_table: str, what: str
    ) -> list[Outcome]:
        """Members in, and those whose group or account the site lacks back as failed: one
        pass over the batch resolves both."""
        batch = self._load("members", rows)
        kind = "participant" if table == "participants" else "unit_member"
        self._run(
            f"""
            WITH resolved AS MATERIALIZED (
                SELECT b.group_key, b.user_key, b.role, g.id AS group_id, u.id AS user_id
                FROM {{batch}} b
                LEFT JOIN {groups_table} g ON g.site = %(site)s AND g.sync_key = b.group_key
                LEFT JOIN lms.users u ON u.site = %(site)s AND u.sync_key = b.user_key
            ), added AS (
                INSERT INTO lms.{table} ({group_column}, user_id, role, synced)
                SELECT group_id, user_id, role, true FROM resolved
                WHERE group_id IS NOT NULL AND user_id IS NOT NULL
                ON CONFLICT ({group_column}, user_id, role) DO NOTHING
                RETURNING {group_column} AS group_id, user_id, role
            ), {members_journaled(kind, "added", "absent", "synced")}
            SELECT group_key || '/' || user_key FROM resolved
            WHERE group_id IS NULL OR user_id IS NULL
            """,
            batch,
        )
        return [
            Outcome("membership", key, "failed", f"no such {what} or account")
            for (key,) in self.cur.fetchall()
        ]

    def remove_memberships(self, rows: Iterable[MemberRow]) -> list[Outcome]:
        batch = self._load("members", rows)
        self._run(
            f"""
            WITH gone AS (
                DELETE FROM lms.participants p USING {{batch}} b, lms.courses c, lms.users u
                WHERE c.site = %(site)s AND c.sync_key = b.group_key
                  AND u.site = %(site)s AND u.sync_key = b.user_key
                  AND p.course_id = c.id AND p.user_id = u.id AND p.role = b.role AND p.synced
                RETURNING p.course_id AS group_id, p.user_id, p.role
            ), {members_journaled("participant", "gone", "synced", "absent")}
            SELECT 1
            """,
            batch,
        )
        self._run(
            f"""
            WITH gone AS (
                DELETE FROM lms.unit_members m USING {{batch}} b, lms.units n, lms.users u
                WHERE n.site = %(site)s AND n.sync_key = b.group_key
                  AND u.site = %(site)s AND u.sync_key = b.user_key
                  AND m.unit_id = n.id AND m.user_id = u.id AND m.role = b.role AND m.synced
                RETURNING m.unit_id AS group_id, m.user_id, m.role
            ), {members_journaled("unit_member", "gone", "synced", "absent")}
            SELECT 1
            """,
            batch,
        )
        return []

    # -- undo ----------------------------------------------------------------------------------

    def restore(self, undone: int, *, scoped: bool) -> dict:
        from .restore import restore

        assert self.journal is not None, "an undo is journaled as a run of its own"
        return restore(self.cur, self.site, undone, self.journal, scoped=scoped)

    # -- looking at it -------------------------------------------------------------------------

    # -- what the readiness checks read, and sync keys given by hand ---------------------------

    def _dicts(self, query: str, params: dict) -> list[dict]:
        self.cur.execute(query, params)
        names = [c.name for c in self.cur.description]
        return [dict(zip(names, row, strict=True)) for row in self.cur.fetchall()]

    def accounts(self) -> Iterator[dict]:
        for row in streamed(
            self.cur,
            "SELECT id, sync_key, username, email, first_name, last_name, birth_date,"
            " profile, last_login, created_at, trashed_at IS NOT NULL"
            " FROM lms.users WHERE site = %(site)s ORDER BY id",
            {"site": self.site},
        ):
            yield dict(zip(ACCOUNT_FIELDS, row, strict=True))

    def terms(self) -> list[dict]:
        return self._dicts(
            "SELECT id, sync_key, name, begins, ends, created_by_integration,"
            " archived_at IS NOT NULL AS archived FROM lms.terms WHERE site = %(site)s"
            " ORDER BY begins NULLS LAST, id",
            {"site": self.site},
        )

    def set_sync_key(self, account_id: int, old: str | None, new: str | None) -> bool:
        self.cur.execute(
            "UPDATE lms.users SET sync_key = %(new)s, updated_at = now() WHERE id = %(id)s"
            " AND site = %(site)s AND sync_key IS NOT DISTINCT FROM %(old)s",
            {"new": new, "old": old, "id": account_id, "site": self.site},
        )
        return self.cur.rowcount == 1

    def snapshot(self) -> dict:
        queries = {
            "users": "SELECT id, sync_key, profile, sync_key IS NULL AS manual,"
            " trashed_at IS NOT NULL AS trashed FROM lms.users WHERE site = %(site)s"
            " ORDER BY id",
            "units": "SELECT u.id, u.sync_key, u.kind, p.sync_key AS parent,"
            " u.removed_at IS NOT NULL AS removed FROM lms.units u"
            " LEFT JOIN lms.units p ON p.id = u.parent_id WHERE u.site = %(site)s"
            " ORDER BY u.id",
            "terms": "SELECT id, sync_key, name, begins, ends, created_by_integration,"
            " archived_at IS NOT NULL AS archived FROM lms.terms"
            " WHERE site = %(site)s ORDER BY id",
            "courses": "SELECT c.id, c.sync_key, c.title, c.state, c.created_by_integration,"
            " u.sync_key AS unit, t.sync_key AS term FROM lms.courses c"
            " LEFT JOIN lms.units u ON u.id = c.unit_id"
            " LEFT JOIN lms.terms t ON t.id = c.term_id"
            " WHERE c.site = %(site)s ORDER BY c.id",
            "participants": "SELECT c.sync_key AS course, c.id AS course_id,"
            " u.sync_key AS user, u.id AS user_id, p.role, p.synced"
            " FROM lms.participants p JOIN lms.courses c ON c.id = p.course_id"
            " JOIN lms.users u ON u.id = p.user_id WHERE c.site = %(site)s"
            " ORDER BY 2, 4, 5",
            "unit_members": "SELECT n.sync_key AS unit, u.sync_key AS user, m.role, m.synced"
            " FROM lms.unit_members m JOIN lms.units n ON n.id = m.unit_id"
            " JOIN lms.users u ON u.id = m.user_id WHERE n.site = %(site)s"
            " ORDER BY 1, 2, 3",
        }
        result = {}
        for name, query in queries.items():
            self.cur.execute(query, {"site": self.site})
            columns = [d[0] for d in self.cur.description]
            result[name] = [dict(zip(columns, row, strict=True)) for row in self.cur.fetchall()]
        return result


def forget_site(cur, site: str) -> None:
    """Remove a whole site, manual objects included (demo and benchmark resets only)."""
    params = {"site": site}
    cur.execute(
        "DELETE FROM lms.participants WHERE course_id IN"
        " (SELECT id FROM lms.courses WHERE site = %(site)s)",
        params,
    )
    cur.execute(
        "DELETE FROM lms.unit_members WHERE unit_id IN"
        " (SELECT id FROM lms.units WHERE site = %(site)s)",
        params,
    )
    for table in ("courses", "terms", "units", "users"):
        cur.execute(f"DELETE FROM lms.{table} WHERE site = %(site)s", params)
