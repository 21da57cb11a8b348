"""Applying a committed run's change set to the customer's LMS site.

The work is split into steps, in a safe order: identity changes first (an object relinked to
its new key is then found under it), parents before children when creating (users,
units, terms, courses, then memberships), and users last when deleting. Groups that left are
retired before memberships are removed: a retired course turns its synced participants into
manual ones who keep access, which removing them first would defeat.

Each step runs in one transaction that also records the step as done, so a run killed half-way
starts again at the step it was in and ends exactly where an uninterrupted run would; applying
a run a second time changes nothing.

Rows go to the site in batches (see :mod:`sisflow.lms.adapter`). What the site cannot apply
comes back as an outcome (skipped, failed) and is kept in ``sis.apply_outcomes`` with the run;
in a delay-delete window, deletions are kept in ``sis.deferred_deletions`` instead (outcome
deferred). Every other change row of the run was applied.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg2.extras import execute_values

from . import deferred, faults, runs
from .calendar import DELAY_DELETE, NORMAL
from .db.stream import streamed
from .entities import username_sql
from .lms.adapter import CourseRow, LmsSite, MemberRow, Outcome, TermRow, UnitRow, UserRow
from .lms.postgres_site import PostgresSite

log = logging.getLogger(__name__)

#: rows per batch to the site: each batch is one round of statements there, whose joins may
#: scan a table (the reference site's participants) once per batch
BATCH = 200_000

#: group types that become hierarchy units, and those that become courses
UNIT_KINDS = ("skoleeier", "skole", "trinn", "basisgruppe")
COURSE_KINDS = ("undervisningsgruppe",)

#: IMS roletype -> the LMS role of a participant or unit member
ROLES = {
    "01": "learner",
    "02": "instructor",
    "03": "content_developer",
    "04": "member",
    "05": "manager",
    "06": "mentor",
    "07": "administrator",
    "08": "teaching_assistant",
}
_ROLE_SQL = "CASE roletype " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in ROLES.items()) + " END"


_END = object()


class _Batch:
    """Up to :data:`BATCH` rows, read from the server as the site takes them: of a rollover's
    batch of 200,000 memberships only the driver's last fetch is in memory. Read once; its
    length is the rows the site took."""

    def __init__(self, rows: Iterator):
        self._rows = rows
        self._taken = 0

    def __iter__(self) -> Iterator:
        for row in self._rows:
            self._taken += 1
            yield row

    def __len__(self) -> int:
        return self._taken

    def check_taken(self) -> None:
        """A site that left rows of a batch unread would leave them unapplied, unseen."""
        if next(self._rows, _END) is not _END:
            raise RuntimeError(f"the LMS site took {self._taken} rows of a batch, not all")


@dataclass
class Context:
    cur: Any  # a psycopg2 cursor
    site: LmsSite
    run_id: int
    customer: str
    mode: str  # normal or delay-delete
    course_archiving: bool
    counts: dict = field(
        default_factory=lambda: {"applied": 0, "deferred": 0, "skipped": 0, "failed": 0}
    )
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def params(self) -> dict:
        return {
            "run": self.run_id,
            "customer": self.customer,
            "units": list(UNIT_KINDS),
            "courses": list(COURSE_KINDS),
        }

    def batches(self, query: str, factory) -> Iterator[_Batch]:
        """The query's rows in batches of up to :data:`BATCH`, each read from a server-side
        cursor while the site takes it."""
        make = getattr(factory, "_make", None)  # a NamedTuple's, without a call per row
        fetched = streamed(self.cur, query, self.params, size=max(1, BATCH // 10))
        rows = map(make, fetched) if make else (factory(*row) for row in fetched)
        while (first := next(rows, _END)) is not _END:
            batch = _Batch(itertools.chain((first,), itertools.islice(rows, BATCH - 1)))
            yield batch
            batch.check_taken()

    def send_all(self, query: str, factory, operation: Callable, step: str) -> None:
        """Every batch of the query's rows to ``operation``."""
        for batch in self.batches(query, factory):
            self.send(operation, batch, step)

    def send(self, operation: Callable, batch: _Batch | list, step: str) -> None:
        failed = operation(batch)
        self.outcomes.extend(failed)
        for o in failed:
            self.counts[o.outcome] += 1
        self.counts["applied"] += len(batch) - len(failed)
        faults.crash_point(f"apply:{step}:batch")

    def defer(self, entity: str) -> None:
        """Keep the run's deletions of ``entity`` back from the LMS (delay delete)."""
        self.counts["deferred"] += deferred.defer(self.cur, self.run_id, self.customer, entity)


# -- the steps, in order -------------------------------------------------------------------------


def _relinks(ctx: Context) -> None:
    """Accepted identity changes first: the object takes its new key, so every later step
    (the update of its values, its memberships) finds it under the key the file has now."""
    for entity, operation in (("person", ctx.site.relink_users), ("group", ctx.site.relink_groups)):
        query = (
            "SELECT old_key, new_key FROM sis.relinks WHERE run_id = %(run)s"
            f" AND customer = %(customer)s AND entity = '{entity}' AND decision = 'accepted'"
            " AND undone_at IS NULL ORDER BY id"
        )
        ctx.send_all(query, lambda old, new: (old, new), operation, "relinks")
    ctx.cur.execute(
        "UPDATE sis.relinks SET applied_run = %(run)s WHERE run_id = %(run)s"
        " AND customer = %(customer)s AND decision = 'accepted' AND undone_at IS NULL",
        ctx.params,
    )


def user_fields(alias: str) -> str:
    """A person's account as the LMS gets it (a :class:`UserRow`), from a row of the current
    state or of a change set joined with :func:`teaching_join`: the profile from the
    institution role, else from the roles the person has in the customer's groups."""
    return f"""
        {alias}.sourcedid,
        {username_sql(f"{alias}.userids")},
        COALESCE({alias}.given, {alias}.fn), {alias}.family, {alias}.email,
        CASE lower({alias}.institution_role)
            WHEN 'student' THEN 'student' WHEN 'faculty' THEN 'teacher'
            WHEN 'staff' THEN 'staff' WHEN 'administrator' THEN 'admin'
            ELSE CASE WHEN teaching.member_id IS NOT NULL THEN 'teacher' ELSE 'student' END
        END,
        {alias}.bday::text
    """


def teaching_join(alias: str) -> str:
    """The join :func:`user_fields` reads: the customer's persons with a role other than a
    pupil's in some group, each once. A join rather than a correlated EXISTS: no index leads
    from a member to its memberships, and Postgres runs such a subquery once per person
    whenever it estimates the set too large to hash in ``work_mem``, a scan of every
    membership for each person (hours for a large customer)."""
    return f"""
        LEFT JOIN (
            SELECT DISTINCT m.member_id FROM sis.memberships m
            WHERE m.customer = %(customer)s AND m.idtype = 1 AND m.roletype NOT IN ('01', '04')
        ) teaching ON teaching.member_id = {alias}.sourcedid
    """


def _users(ctx: Context) -> None:
    query = f"""
        SELECT {user_fields("ch")}
        FROM sis.person_changes ch {teaching_join("ch")}
        WHERE ch.run_id = %(run)s AND ch.op IN ('create', 'update')
    """
    ctx.send_all(query, UserRow, ctx.site.upsert_users, "users")


def _units(ctx: Context) -> None:
    query = """
        SELECT sourcedid, grouptype, COALESCE(short, sourcedid), parent_id
        FROM sis.group_changes
        WHERE run_id = %(run)s AND op IN ('create', 'update') AND grouptype = ANY(%(units)s)
    """
    ctx.send_all(query, UnitRow, ctx.site.upsert_units, "units")


_TERM_KEY = "g.begin_date::text || '..' || g.end_date::text"


def _terms(ctx: Context) -> None:
    """Terms follow the course groups' timeframes in the current state."""
    ctx.cur.execute(
        f"""
        SELECT DISTINCT {_TERM_KEY},
               CASE WHEN extract(year FROM g.begin_date) = extract(year FROM g.end_date)
                    THEN extract(year FROM g.begin_date)::text
                    ELSE extract(year FROM g.begin_date)::text || '/'
                         || extract(year FROM g.end_date)::text END,
               g.begin_date::text, g.end_date::text
        FROM sis.groups g
        WHERE g.customer = %(customer)s AND g.grouptype = ANY(%(courses)s)
          AND g.begin_date IS NOT NULL AND g.end_date IS NOT NULL
        """,
        ctx.params,
    )
    terms = [TermRow(*row) for row in ctx.cur.fetchall()]
    if terms:
        ctx.send(ctx.site.upsert_terms, terms, "terms")
    # a term goes with the last of its courses: in a delay-delete window those stay, and so
    # does their term, until the deletions are let go after the window
    if ctx.mode != DELAY_DELETE:
        ctx.counts["archived_terms"] = ctx.site.archive_terms_except([t.sync_key for t in terms])


def _courses(ctx: Context) -> None:
    query = f"""
        SELECT g.sourcedid, COALESCE(g.long, g.short, g.sourcedid), g.short, g.parent_id,
               CASE WHEN g.begin_date IS NOT NULL AND g.end_date IS NOT NULL
                    THEN {_TERM_KEY} END
        FROM sis.group_changes g
        WHERE g.run_id = %(run)s AND g.op IN ('create', 'update')
          AND g.grouptype = ANY(%(courses)s)
    """
    ctx.send_all(query, CourseRow, ctx.site.upsert_courses, "courses")


def _memberships(ctx: Context) -> None:
    """Removals (held back in a delay-delete window), then additions to courses and units.
    Removals first: a key names one participant (roles map one to one), so the order changes
    nothing, and each removal batch then searches the participants before the additions (a
    rollover's million new ones) are among them."""
    _removals(ctx)
    joined = """
        FROM sis.membership_changes ch
        JOIN sis.groups g ON g.customer = %(customer)s AND g.sourcedid = ch.group_id
        WHERE ch.run_id = %(run)s AND ch.op IN ('create', 'update') AND ch.status = 1
          AND ch.idtype = 1
    """
    for kinds, operation in (
        ("courses", ctx.site.add_participants),
        ("units", ctx.site.add_unit_members),
    ):
        query = (
            f"SELECT ch.group_id, ch.member_id, {_ROLE_SQL.replace('roletype', 'ch.roletype')}"
            f" {joined} AND g.grouptype = ANY(%({kinds})s)"
        )
        ctx.send_all(query, MemberRow, operation, "memberships")
    # the rest has nothing in the LMS to go to
    ctx.cur.execute(
        """
        INSERT INTO sis.apply_outcomes (run_id, entity, record_key, outcome, detail)
        SELECT %(run)s, 'membership', ch.group_id || '/' || ch.member_id, 'skipped',
               CASE WHEN ch.idtype = 2 THEN 'a group as a member'
                    ELSE 'group type ' || COALESCE(g.grouptype, '?') || ' is not in the LMS' END
        FROM sis.membership_changes ch
        LEFT JOIN sis.groups g ON g.customer = %(customer)s AND g.sourcedid = ch.group_id
        WHERE ch.run_id = %(run)s AND ch.op IN ('create', 'update') AND ch.status = 1
          AND (ch.idtype = 2 OR NOT (g.grouptype = ANY(%(units)s) OR g.grouptype = ANY(%(courses)s))
               OR g.grouptype IS NULL)
        """,
        ctx.params,
    )
    ctx.counts["skipped"] += ctx.cur.rowcount


#: the groups that left in the run and that the site retired: a deleted membership of one of
#: them has nothing left to remove, since the retirement made the course's participants manual
#: and took the unit's members out (see STEPS)
_RETIRED = """
    SELECT sourcedid FROM sis.group_changes WHERE run_id = %(run)s AND op = 'delete'
    EXCEPT
    SELECT record_key FROM sis.apply_outcomes
    WHERE run_id = %(run)s AND entity = 'group' AND outcome = 'failed'
"""


def _removals(ctx: Context) -> None:
    """Members taken out: an update to status 0 (inactive) at once; deletions may wait.
    Deletions that went with their group count as applied without a call to the site: at a
    rollover that is every membership of last year, a million calls that would change
    nothing."""
    member = f"SELECT ch.group_id, ch.member_id, {_ROLE_SQL.replace('roletype', 'ch.roletype')}"
    if ctx.mode == DELAY_DELETE:
        ctx.defer("membership")
        query = (
            f"{member} FROM sis.membership_changes ch WHERE ch.run_id = %(run)s"
            " AND ch.op = 'update' AND ch.status = 0 AND ch.idtype = 1"
        )
    else:
        # a table of its own, with statistics: joined as a subquery, the planner took it for
        # one row and read it again for each of a rollover's deleted memberships (minutes for
        # a large rollover)
        ctx.cur.execute("DROP TABLE IF EXISTS pg_temp._retired")
        ctx.cur.execute(f"CREATE TEMP TABLE _retired ON COMMIT DROP AS {_RETIRED}", ctx.params)
        ctx.cur.execute("ANALYZE _retired")
        ctx.cur.execute(
            "SELECT count(*) FROM sis.membership_changes ch JOIN _retired r"
            " ON r.sourcedid = ch.group_id WHERE ch.run_id = %(run)s AND ch.op = 'delete'"
            " AND ch.idtype = 1",
            ctx.params,
        )
        ctx.counts["applied"] += ctx.cur.fetchone()[0]
        query = (
            f"{member} FROM sis.membership_changes ch LEFT JOIN _retired r"
            " ON ch.op = 'delete' AND r.sourcedid = ch.group_id"
            " WHERE ch.run_id = %(run)s AND ch.idtype = 1 AND r.sourcedid IS NULL"
            " AND (ch.op = 'delete' OR ch.op = 'update' AND ch.status = 0)"
        )
    ctx.send_all(query, MemberRow, ctx.site.remove_memberships, "memberships")


def _groups_removed(ctx: Context) -> None:
    if ctx.mode == DELAY_DELETE:
        ctx.defer("group")
        return
    query = "SELECT sourcedid FROM sis.group_changes WHERE run_id = %(run)s AND op = 'delete'"
    archive = ctx.course_archiving
    ctx.send_all(
        query,
        lambda key: key,
        lambda keys: ctx.site.retire_groups(keys, archive_courses=archive),
        "groups_removed",
    )


def _users_removed(ctx: Context) -> None:
    if ctx.mode == DELAY_DELETE:
        ctx.defer("person")
        return
    query = "SELECT sourcedid FROM sis.person_changes WHERE run_id = %(run)s AND op = 'delete'"
    ctx.send_all(query, lambda key: key, ctx.site.trash_users, "users_removed")


def _deferred_settled(ctx: Context) -> None:
    """After a window: the deletions this run released are applied now, exactly once; those
    whose object came back in the meantime are dropped."""
    if ctx.mode != NORMAL:
        return
    ctx.counts.update(deferred.settle(ctx.cur, ctx.run_id, ctx.customer))


STEPS: list[tuple[str, Callable[[Context], None]]] = [
    ("relinks", _relinks),
    ("users", _users),
    ("units", _units),
    ("terms", _terms),
    ("courses", _courses),
    # before the memberships: a course whose group left keeps its people as manual
    # participants, so it must be retired before its synced participants would be removed
    ("groups_removed", _groups_removed),
    ("memberships", _memberships),
    ("users_removed", _users_removed),
    ("deferred_settled", _deferred_settled),
]


def apply_run(
    conn,
    run_id: int,
    *,
    mode: str,
    course_archiving: bool,
    only: tuple[str, ...] | None = None,
    holder: str | None = None,
    journal: bool = True,
) -> dict:
    """Apply a committed run to the customer's site; returns counts per step.

    ``only`` runs some of the steps; the steps before them must be done. The run counts as
    applied once every step is done. Each step's transaction is guarded by ``holder``'s lease
    on the customer (:func:`sisflow.runs.guard`). Without ``journal`` (the benchmark's
    baseline for what the journal costs) the run cannot be undone.
    """
    run = runs.get(conn, run_id)
    if run["status"] != "committed":
        raise RuntimeError(f"run {run_id} is {run['status']}: only a committed run is applied")
    if run["lms_applied_at"] is not None:
        return run["lms_counts"]
    customer = run["customer"]
    names = [name for name, _ in STEPS]
    if only:
        unknown = set(only) - set(names)
        if unknown:
            raise ValueError(f"unknown apply steps {sorted(unknown)}")
        before = names[: min(names.index(n) for n in only)]
        with conn.cursor() as cur:
            cur.execute("SELECT step FROM sis.apply_steps WHERE run_id = %s", (run_id,))
            missing = set(before) - {row[0] for row in cur.fetchall()}
        if missing:
            raise RuntimeError(f"run {run_id}: steps {sorted(missing)} must be applied first")
    for name, step in STEPS:
        if only and name not in only:
            continue
        with conn, conn.cursor() as cur:
            runs.guard(cur, customer, holder)
            # the journal groups a batch's members per course in memory: with the default
            # 4 MB a rollover's batches of 200,000 went to disk
            cur.execute("SET LOCAL work_mem = '64MB'")
            cur.execute(
                "SELECT 1 FROM sis.apply_steps WHERE run_id = %s AND step = %s", (run_id, name)
            )
            if cur.fetchone():
                continue  # done before a crash or an earlier attempt
            ctx = Context(
                cur,
                PostgresSite(cur, customer, journal=run_id if journal else None),
                run_id,
                customer,
                mode,
                course_archiving,
            )
            step(ctx)
            if ctx.outcomes:
                execute_values(
                    cur,
                    "INSERT INTO sis.apply_outcomes (run_id, entity, record_key, outcome, detail)"
                    " VALUES %s",
                    [(run_id, o.entity, o.key, o.outcome, o.detail) for o in ctx.outcomes],
                )
            runs.record_step(cur, run_id, name, ctx.counts)
        log.info("run %s: %s %s", run_id, name, ctx.counts)
        faults.crash_point(f"apply:{name}:done")
    with conn, conn.cursor() as cur:
        cur.execute("SELECT step, counts FROM sis.apply_steps WHERE run_id = %s", (run_id,))
        counts = dict(cur.fetchall())
        if set(counts) == set(names):
            runs.update(
                cur, run_id, lms_applied_at=datetime.now(UTC), lms_mode=str(mode), lms_counts=counts
            )
    return counts
