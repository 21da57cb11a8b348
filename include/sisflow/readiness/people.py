"""The SIS side of the readiness checks: persons and course terms, from the customer's
current state, from the file a rollover staged, or from an export given by hand."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import date
from typing import Any, NamedTuple

from psycopg2 import sql
from psycopg2.extras import execute_values

from ..apply import COURSE_KINDS
from ..db.stream import streamed
from ..entities import BY_NAME, PERSON, username_sql

COLUMNS = ["sync_key", "username", "email", "given", "family", "birth_date"]

#: the persons as rows of :data:`COLUMNS`, read through the cursor the checks run on
People = Callable[[Any], Iterable[tuple]]
#: the persons whose key leaves (in the current state, not in the export) and those whose key
#: arrives (the other way round), as SELECTs for :mod:`sisflow.identity.pairs`, and their
#: parameters; made through the cursor the checks run on
Sides = Callable[[Any], tuple[sql.Composable, sql.Composable, dict]]


class SisData(NamedTuple):
    people: People
    terms: set[tuple[date, date]]  # the course groups' timeframes
    source: str  # in words, for the report
    whole: bool  # a whole export (a file), not the current state
    sides: Sides | None = None  # a new export beside the current state: re-keyed persons


def _sides(export: sql.Composable, customer: str) -> Sides:
    leaving = sql.SQL(
        "SELECT c.* FROM sis.persons c WHERE c.customer = %(customer)s AND NOT EXISTS"
        " (SELECT 1 FROM {export} x WHERE x.sourcedid = c.sourcedid)"
    ).format(export=export)
    arriving = sql.SQL(
        "SELECT x.* FROM {export} x WHERE NOT EXISTS (SELECT 1 FROM sis.persons c"
        " WHERE c.customer = %(customer)s AND c.sourcedid = x.sourcedid)"
    ).format(export=export)
    return lambda cur: (leaving, arriving, {"customer": customer})


def _read(
    cur,
    people_from: sql.Composable,
    groups_from: sql.Composable,
    params: dict,
    people_where: str,
    groups_where: str,
) -> tuple[People, set]:
    people = sql.SQL(
        "SELECT sourcedid, " + username_sql("userids") + ", email, COALESCE(given, fn),"
        " family, bday::text FROM {} WHERE " + people_where
    ).format(people_from)
    cur.execute(
        sql.SQL(
            "SELECT DISTINCT begin_date, end_date FROM {} WHERE grouptype = ANY(%(courses)s)"
            " AND begin_date IS NOT NULL AND end_date IS NOT NULL AND " + groups_where
        ).format(groups_from),
        {**params, "courses": list(COURSE_KINDS)},
    )
    return (lambda cur: streamed(cur, people, params)), set(cur.fetchall())


def state_people(cur, customer: str) -> SisData:
    people, terms = _read(
        cur,
        PERSON.table,
        BY_NAME["group"].table,
        {"c": customer},
        "customer = %(c)s",
        "customer = %(c)s",
    )
    return SisData(people, terms, "the current state", False)


def staged_people(cur, run_id: int, customer: str) -> SisData:
    where = "recstatus IS DISTINCT FROM 3"
    people, terms = _read(
        cur, PERSON.staged(run_id), BY_NAME["group"].staged(run_id), {}, where, where
    )
    export = sql.SQL("(SELECT * FROM {} WHERE recstatus IS DISTINCT FROM 3)").format(
        PERSON.staged(run_id)
    )
    return SisData(people, terms, f"the file of run {run_id}", True, _sides(export, customer))


def file_people(path: str | os.PathLike, customer: str) -> SisData:
    """An export read by the reader (its checks apply; a rejected file raises)."""
    from ..ims.reader import ImsReader
    from ..ims.records import Group, Person

    people, terms = [], set()  # in memory: an operator's check by hand, not a nightly run
    persons = []
    for record in ImsReader(path):
        if isinstance(record, Person) and record.recstatus != 3:
            people.append(
                (
                    record.sourcedid,
                    _username(record.userids),
                    record.email,
                    record.given or record.fn,
                    record.family,
                    record.bday,
                )
            )
            persons.append(
                (
                    record.sourcedid,
                    record.userids,
                    record.email,
                    record.given,
                    record.fn,
                    record.family,
                    record.bday,
                )
            )
        elif (
            isinstance(record, Group)
            and record.recstatus != 3
            and record.grouptype in COURSE_KINDS
            and record.begin
            and record.end
        ):
            terms.add((date.fromisoformat(record.begin), date.fromisoformat(record.end)))
    from_file = _sides(sql.Identifier("_readiness_file_persons"), customer)

    def sides(cur):
        cur.execute(
            "DROP TABLE IF EXISTS pg_temp._readiness_file_persons;"
            " CREATE TEMP TABLE _readiness_file_persons (sourcedid text, userids jsonb,"
            " email text, given text, fn text, family text, bday date) ON COMMIT DROP"
        )
        execute_values(cur, "INSERT INTO _readiness_file_persons VALUES %s", persons)
        return from_file(cur)

    name = f"the file {os.path.basename(path)}"
    return SisData(lambda cur: people, terms, name, True, sides)


def _username(userids: str | None) -> str | None:
    pairs = json.loads(userids) if userids else []
    typed = [v for t, v in pairs if t == "username"]
    return (typed or [v for t, v in pairs if t is None] or [None])[0]
