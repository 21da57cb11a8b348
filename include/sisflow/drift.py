"""Drift: where the LMS no longer holds what the import database says it should.

Every synced object the current state names is compared with the customer's site: an
account, unit or course missing, in the trash or removed, or with values edited by hand; a
synced participant or unit member removed by hand or turned manual; an account with a sync
key the import database does not know. Objects made by hand (no sync key, manual members)
are never listed, and neither are deletions kept back by a delay-delete window.

A repair takes the drifted records out of the current state: the next run finds them in its
file as new and makes them again, through the filter like any other change (``--repair``,
kept with who asked for it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from . import runs
from .apply import _ROLE_SQL, COURSE_KINDS, ROLES, UNIT_KINDS, teaching_join, user_fields

log = logging.getLogger(__name__)

#: drifted objects listed by key in the result and the email (the counts are always whole)
LISTED = 50


def _members_drifted(
    kinds: str, groups: str, alive: str, members: str, group_column: str
) -> tuple[str, str]:
    """The synced members of a live course or unit that are gone or manual in the LMS."""
    return (
        f"""
        SELECT m.group_id || '/' || m.member_id || '/' || m.roletype,
               CASE WHEN x.synced IS NULL THEN 'removed by hand' ELSE 'made manual by hand' END
        FROM sis.memberships m
        JOIN sis.groups g ON g.customer = %(customer)s AND g.sourcedid = m.group_id
             AND g.grouptype = ANY(%({kinds})s)
        JOIN {groups} o ON o.site = %(customer)s AND o.sync_key = m.group_id AND {alive}
        JOIN lms.users u ON u.site = %(customer)s AND u.sync_key = m.member_id
        LEFT JOIN {members} x ON x.{group_column} = o.id AND x.user_id = u.id
             AND x.role = {_ROLE_SQL.replace("roletype", "m.roletype")}
        WHERE m.customer = %(customer)s AND m.idtype = 1 AND m.status = 1
          AND m.roletype = ANY(%(roles)s) AND x.synced IS DISTINCT FROM true
        """,
        "sis.memberships",
    )


#: per kind: the query of drifted objects (key, what), and the state rows a repair takes out
_CHECKS = {
    "account": (
        f"""
        WITH expected AS (
            SELECT {user_fields("p")} FROM sis.persons p {teaching_join("p")}
            WHERE p.customer = %(customer)s
        )
        SELECT e.sourcedid, CASE
            WHEN u.id IS NULL THEN 'missing'
            WHEN u.trashed_at IS NOT NULL THEN 'in the trash'
            ELSE 'edited by hand: ' || concat_ws(', ',
                CASE WHEN u.username IS DISTINCT FROM e.username THEN 'username' END,
                CASE WHEN u.first_name IS DISTINCT FROM e.given THEN 'first name' END,
                CASE WHEN u.last_name IS DISTINCT FROM e.family THEN 'last name' END,
                CASE WHEN u.email IS DISTINCT FROM e.email THEN 'email' END,
                CASE WHEN u.profile IS DISTINCT FROM e.profile THEN 'profile' END,
                CASE WHEN u.birth_date::text IS DISTINCT FROM e.bday THEN 'birth date' END)
        END
        FROM expected e (sourcedid, username, given, family, email, profile, bday)
        LEFT JOIN lms.users u ON u.site = %(customer)s AND u.sync_key = e.sourcedid
        WHERE u.id IS NULL OR u.trashed_at IS NOT NULL
           OR (u.username, u.first_name, u.last_name, u.email, u.profile, u.birth_date::text)
              IS DISTINCT FROM (e.username, e.given, e.family, e.email, e.profile, e.bday)
        UNION ALL
        SELECT u.sync_key, 'a sync key the import database does not know'
        FROM lms.users u
        WHERE u.site = %(customer)s AND u.sync_key IS NOT NULL AND u.trashed_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM sis.persons p WHERE p.customer = %(customer)s
                          AND p.sourcedid = u.sync_key)
          AND NOT EXISTS (SELECT 1 FROM sis.deferred_deletions d
                          WHERE d.customer = %(customer)s AND d.entity = 'person'
                            AND d.applied_run IS NULL AND d.dropped_run IS NULL
                            AND d.record_key->>'sourcedid' = u.sync_key)
        """,
        "sis.persons",
    ),
    "unit": (
        """
        SELECT g.sourcedid, CASE
            WHEN n.id IS NULL THEN 'missing'
            WHEN n.removed_at IS NOT NULL THEN 'removed'
            ELSE 'edited by hand: ' || concat_ws(', ',
                CASE WHEN n.name IS DISTINCT FROM COALESCE(g.short, g.sourcedid) THEN 'name' END,
                CASE WHEN n.parent_key IS DISTINCT FROM g.parent_id THEN 'parent' END)
        END
        FROM sis.groups g
        LEFT JOIN lms.units n ON n.site = %(customer)s AND n.sync_key = g.sourcedid
        WHERE g.customer = %(customer)s AND g.grouptype = ANY(%(units)s)
          AND (n.id IS NULL OR n.removed_at IS NOT NULL
               OR (n.name, n.parent_key)
                  IS DISTINCT FROM (COALESCE(g.short, g.sourcedid), g.parent_id))
        """,
        "sis.groups",
    ),
    "course": (
        """
        SELECT g.sourcedid, CASE
            WHEN c.id IS NULL THEN 'missing'
            WHEN c.state <> 'active' THEN 'archived'
            ELSE 'edited by hand: ' || concat_ws(', ',
                CASE WHEN c.title IS DISTINCT FROM COALESCE(g.long, g.short, g.sourcedid)
                     THEN 'title' END,
                CASE WHEN c.code IS DISTINCT FROM g.short THEN 'code' END,
                CASE WHEN c.unit_id IS DISTINCT FROM u.id THEN 'unit' END)
        END
        FROM sis.groups g
        LEFT JOIN lms.courses c ON c.site = %(customer)s AND c.sync_key = g.sourcedid
        LEFT JOIN lms.units u ON u.site = %(customer)s AND u.sync_key = g.parent_id
        WHERE g.customer = %(customer)s AND g.grouptype = ANY(%(courses)s)
          AND (c.id IS NULL OR c.state <> 'active'
               OR (c.title, c.code, c.unit_id)
                  IS DISTINCT FROM (COALESCE(g.long, g.short, g.sourcedid), g.short, u.id))
        """,
        "sis.groups",
    ),
    "participant": _members_drifted(
        "courses", "lms.courses", "o.state = 'active'", "lms.participants", "course_id"
    ),
    "unit_member": _members_drifted(
        "units", "lms.units", "o.removed_at IS NULL", "lms.unit_members", "unit_id"
    ),
}


@dataclass
class Drift:
    customer: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> what -> n
    listed: list[dict] = field(default_factory=list)  # the first LISTED: kind, key, what
    total: int = 0
    repaired: dict[str, int] | None = None  # state rows taken out, per table
    repaired_by: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        if not self.total:
            return [f"{self.customer}: no drift, the LMS holds what the import database says"]
        out = [f"{self.customer}: {self.total} object(s) drifted from the import database"]
        for kind, whats in sorted(self.counts.items()):
            out.append(f"  {kind}: " + ", ".join(f"{n} {w}" for w, n in sorted(whats.items())))
        out += [f"    {d['kind']} {d['key']}: {d['what']}" for d in self.listed]
        if self.total > len(self.listed):
            out.append(f"    and {self.total - len(self.listed)} more")
        if self.repaired is not None:
            out.append(
                f"  repaired by {self.repaired_by}: the next run makes them again"
                " (through the filter): " + ", ".join(f"{t} {n}" for t, n in self.repaired.items())
            )
        return out


def _found(cur, customer: str) -> None:
    cur.execute("DROP TABLE IF EXISTS pg_temp._drift")
    cur.execute("CREATE TEMP TABLE _drift (kind text, key text, what text) ON COMMIT DROP")
    params = {
        "customer": customer,
        "units": list(UNIT_KINDS),
        "courses": list(COURSE_KINDS),
        "roles": list(ROLES),
    }
    for kind, (query, _) in _CHECKS.items():
        cur.execute(f"INSERT INTO _drift SELECT '{kind}', k, w FROM ({query}) d (k, w)", params)


def check(conn, customer: str) -> Drift:
    """The drift of the customer's site (reads only)."""
    with conn, conn.cursor() as cur:
        _found(cur, customer)
        return _result(cur, customer)


def _result(cur, customer: str) -> Drift:
    drift = Drift(customer)
    cur.execute(
        "SELECT kind, split_part(what, ':', 1), count(*) FROM _drift GROUP BY 1, 2 ORDER BY 1, 2"
    )
    for kind, what, n in cur.fetchall():
        drift.counts.setdefault(kind, {})[what] = n
        drift.total += n
    cur.execute("SELECT kind, key, what FROM _drift ORDER BY kind, key LIMIT %s", (LISTED,))
    drift.listed = [{"kind": k, "key": key, "what": w} for k, key, w in cur.fetchall()]
    return drift


def repair(conn, customer: str, *, by: str, holder) -> Drift:
    """Take the drifted records out of the current state (under the customer's lease), so
    that the next run makes them again; recorded with who asked."""
    runs.acquire(conn, customer, holder.id, holder.description, process=True)
    try:
        with conn, conn.cursor() as cur:
            runs.guard(cur, customer, holder.id)
            _found(cur, customer)
            drift = _result(cur, customer)
            drift.repaired, drift.repaired_by = {}, by
            for kind, (_, table) in _CHECKS.items():
                if table == "sis.memberships":
                    cur.execute(
                        "DELETE FROM sis.memberships m USING _drift d WHERE d.kind = %s"
                        " AND m.customer = %s AND m.idtype = 1"
                        " AND d.key = m.group_id || '/' || m.member_id || '/' || m.roletype",
                        (kind, customer),
                    )
                else:
                    cur.execute(
                        f"DELETE FROM {table} x USING _drift d WHERE d.kind = %s"
                        " AND x.customer = %s AND x.sourcedid = d.key",
                        (kind, customer),
                    )
                drift.repaired[table] = drift.repaired.get(table, 0) + cur.rowcount
            # a missing account comes back as a new one: its memberships come with it
            cur.execute(
                "DELETE FROM sis.memberships m USING _drift d WHERE d.kind = 'account'"
                " AND d.what = 'missing' AND m.customer = %s AND m.idtype = 1"
                " AND m.member_id = d.key",
                (customer,),
            )
            drift.repaired["sis.memberships"] += cur.rowcount
            cur.execute(
                "INSERT INTO sis.drift_repairs (customer, repaired_by, counts) VALUES (%s, %s, %s)",
                (customer, by, runs._db(drift.repaired)),
            )
    finally:
        runs.release(conn, customer, holder.id)
    log.info("%s: drift repaired by %s: %s", customer, by, drift.repaired)
    return drift


def repaired_since(cur, customer: str, run_id: int) -> bool:
    """Whether a repair took records out of the state after the run: the same file then is no
    longer the same import."""
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM sis.drift_repairs WHERE customer = %s AND repaired_at >"
        " (SELECT updated_at FROM sis.runs WHERE id = %s))",
        (customer, run_id),
    )
    return cur.fetchone()[0]


@dataclass
class DriftReport:
    customer: str
    customer_name: str
    outcome: str
    subject: str
    drift: dict
    lines: list[str]
    recipients: list[str] = field(default_factory=list)
    run: dict | None = None
    template: str = "drift"


def check_and_tell(conn, config, services) -> tuple[Drift, str | None]:
    """The customer's drift, emailed when there is any (where it went, else None)."""
    drift = check(conn, config.id)
    if not drift.total:
        return drift, None
    report = DriftReport(
        customer=config.id,
        customer_name=config.name or config.id,
        outcome="drift",
        subject=f"[sisflow] {config.name or config.id}: {drift.total} object(s) drifted in the LMS",
        drift=drift.as_dict(),
        lines=drift.lines(),
        recipients=list(config.recipients),
    )
    return drift, services.sender.send(report)
