"""What the data model's copies of the memberships cost at least, against the aims.

A first import writes each membership four times: staged (read+stage), into the run's change
set (diff), into the current state (commit) and into the LMS site's members (apply). After a
real first import of the size's file, each of the last three writes is timed alone: one
``INSERT ... SELECT`` of the customer's rows into a table with the real table's columns and
indexes, in the order of its primary key (the cheapest for the index), in a transaction
that is rolled back (medians of three). No reading of the file, no
journal, no users or groups, no readiness. Their sum with the raw iterparse is a floor no
tuning of the steps goes under while the model keeps those copies; a rollover writes the
change set twice (last year's memberships deleted, this year's created) and the state twice
(deleted, inserted), so its floor counts those twice.

    python benchmarks/bench.py --floors large --dags 0 --sizes ''
"""

from __future__ import annotations

import statistics
import time

#: (what, the table copied like, the copy's SELECT of the customer's rows); the LMS site's
#: members are its courses' participants and its units' members, two tables
COPIES = (
    (
        "the change set",
        "sis.membership_changes",
        "SELECT 0, 'create', NULL, group_id, member_id, idtype, roletype, subrole, status,"
        " begin_date, end_date, extension FROM sis.memberships WHERE customer = %(customer)s",
    ),
    (
        "the current state",
        "sis.memberships",
        "SELECT * FROM sis.memberships WHERE customer = %(customer)s"
        " ORDER BY group_id, member_id, idtype, roletype",
    ),
    (
        "the LMS site's members",
        "lms.participants",
        "SELECT p.* FROM lms.participants p JOIN lms.courses c ON c.id = p.course_id"
        " WHERE c.site = %(customer)s ORDER BY 1, 2, 3",
    ),
    (
        "the LMS site's members",
        "lms.unit_members",
        "SELECT m.* FROM lms.unit_members m JOIN lms.units n ON n.id = m.unit_id"
        " WHERE n.site = %(customer)s ORDER BY 1, 2, 3",
    ),
)


def _copy_seconds(conn, like: str, select: str, customer: str) -> tuple[float, int]:
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE sis._floor (LIKE {like} INCLUDING DEFAULTS INCLUDING INDEXES)")
        start = time.perf_counter()
        cur.execute(f"INSERT INTO sis._floor {select}", {"customer": customer})
        seconds, rows = time.perf_counter() - start, cur.rowcount
    conn.rollback()
    return seconds, rows


def measure(conn, customer: str, repeat: int = 3) -> dict[str, tuple[float, int]]:
    """Each copy's median seconds and its rows; the customer's first import must be in."""
    out: dict[str, tuple[float, int]] = {}
    for what, like, select in COPIES:
        timed = [_copy_seconds(conn, like, select, customer) for _ in range(repeat)]
        seconds, rows = out.get(what, (0.0, 0))
        out[what] = (seconds + statistics.median(t for t, _ in timed), rows + timed[0][1])
    return out


def report(iterparse: float, copies: dict[str, tuple[float, int]], aims: dict[str, float]) -> None:
    print(
        f"\nWhat the model's copies of the memberships cost at least (iterparse {iterparse:.2f} s):"
    )
    for what, (seconds, rows) in copies.items():
        print(f"  {what:<24} {rows:>10,} rows {seconds:6.2f} s")
    change_set, state, lms = (seconds for seconds, _ in copies.values())
    first = iterparse + change_set + state + lms
    rollover = iterparse + 2 * change_set + 2 * state + lms
    for name, floor in (("first import", first), ("rollover", rollover)):
        print(
            f"  {name:<13} floor {floor:6.2f} s = {floor / iterparse:.1f}x iterparse"
            f" (aim: at most {aims[name]:g}x)"
        )
