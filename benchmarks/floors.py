"""What the data model's copies of the memberships cost at least, against the aims.

A first import writes each membership four times: staged (read+stage), into the run's change
set (diff), into the current state (commit) and into the LMS site's members (apply). After a
real first import of the size's file, each of the last three writes is timed alone: one
``INSERT ... SELECT`` of the customer's rows, in key order (the cheapest for an index), into a
table with the real one's columns and indexes, rolled back; medians of three. No file is read,
nothing is journaled, no persons, groups or readiness checks. With the raw iterparse, their sum
is a floor that no tuning of the steps goes under while the model keeps these copies.

A rollover writes the change set twice (last year's memberships deleted, this year's created)
and the LMS site's members twice (last year's made manual or taken out when their group is
retired, this year's added); its state is rebuilt, written once.

    python benchmarks/bench.py --floors large --sizes '' --dags 0
"""

from __future__ import annotations

import statistics
import time

from sisflow.entities import MEMBERSHIP

_COLUMNS = ", ".join(MEMBERSHIP.columns)
_KEY = ", ".join(MEMBERSHIP.key)

#: (what, the table copied like, the copy's SELECT of the customer's rows); the LMS site's
#: members are its courses' participants and its units' members, two tables
COPIES = (
    (
        "change set",
        "sis.membership_changes",
        f"SELECT 0, 'create', NULL, {_COLUMNS} FROM sis.memberships"
        f" WHERE customer = %(customer)s ORDER BY {_KEY}",
    ),
    (
        "state",
        "sis.memberships",
        f"SELECT * FROM sis.memberships WHERE customer = %(customer)s ORDER BY {_KEY}",
    ),
    (
        "LMS members",
        "lms.participants",
        "SELECT p.* FROM lms.participants p JOIN lms.courses c ON c.id = p.course_id"
        " WHERE c.site = %(customer)s ORDER BY 1, 2, 3",
    ),
    (
        "LMS members",
        "lms.unit_members",
        "SELECT m.* FROM lms.unit_members m JOIN lms.units n ON n.id = m.unit_id"
        " WHERE n.site = %(customer)s ORDER BY 1, 2, 3",
    ),
)

#: how many times each run writes each copy
WRITES = {
    "first import": {"change set": 1, "state": 1, "LMS members": 1},
    "rollover": {"change set": 2, "state": 1, "LMS members": 2},
}


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
        print(f"  {what:<12} {rows:>10,} rows {seconds:6.2f} s")
    for run, writes in WRITES.items():
        floor = iterparse + sum(n * copies[what][0] for what, n in writes.items())
        print(
            f"  {run:<13} floor {floor:6.2f} s = {floor / iterparse:.1f}x iterparse"
            f" (aim: at most {aims[run]:g}x)"
        )
