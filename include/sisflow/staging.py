"""Staging: a file's good records into per-run tables of the import database, by COPY.

The file is read once. Memberships, nearly all of a file's rows, stream into their COPY from
a second thread while the file is still being read, so the database loads them on the other
core; persons and groups go to temporary CSV files and are copied at the end. All of it
happens in the caller's transaction: a file rejected half-way is rolled back whole and
leaves nothing behind.
"""

from __future__ import annotations

import csv
import io
import logging
import queue
import tempfile
import threading

from psycopg2 import sql
from psycopg2.extras import execute_values

from . import school_year, unchanged
from .config import CustomerConfig
from .db.copy import row_writer
from .entities import BY_NAME, ENTITIES, GROUP, MEMBERSHIP, PERSON, idents
from .ims.reader import ImsReader, MembershipRows, ReadAgain
from .ims.records import Membership, Person, ValidationResult
from .school_year import SchoolYear

log = logging.getLogger(__name__)

_CHUNK = 1 << 20  # characters handed to the COPY thread at a time


class _CopyPipe:
    """A file for ``copy_expert`` to read from, filled by the reading thread."""

    def __init__(self):
        self._chunks: queue.Queue = queue.Queue(maxsize=16)  # bounds memory to ~16 chunks
        self.buffer = io.StringIO()

    def flush(self) -> None:
        data = self.buffer.getvalue()
        if data:
            self._chunks.put(data)
            self.buffer.seek(0)
            self.buffer.truncate()

    def close(self, error: BaseException | None = None) -> None:
        if error is None:
            self.flush()
        self._chunks.put(error or "")

    def read(self, size: int = -1) -> str:
        item = self._chunks.get()
        if isinstance(item, BaseException):
            raise item  # psycopg2 then aborts the COPY
        return item


def _copy_sql(cur, entity, run_id: int) -> str:
    return (
        sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)")
        .format(entity.staged(run_id), idents(entity.staged_columns))
        .as_string(cur)
    )


def stage_records(cur, run_id: int, reader: ImsReader, customer: str = "") -> dict[str, int]:
    """Create the run's staging tables and fill them from the reader; rows per entity.

    Raises FatalFileError when the file is rejected (``reader.result`` says why); the caller
    must then roll back its transaction. A fast reader that has to read the file again
    (:class:`ReadAgain`) starts over a slower way from a clean slate. Records the reader
    took as unchanged are listed (:mod:`sisflow.unchanged`), and when one of them names what
    the file no longer holds, the file is read again, every record of it.
    """
    cur.execute("SAVEPOINT stage_records")
    while True:
        try:
            rows = _stage_records(cur, run_id, reader)
            if unchanged.stage(cur, run_id, reader.unchanged()) and unchanged.names_gone(
                cur, run_id, customer
            ):
                raise ReadAgain("a record taken as unchanged names one gone", every_record=True)
            return rows
        except ReadAgain as why:
            log.info("run %s: the file is read again (%s)", run_id, why)
            cur.execute("ROLLBACK TO SAVEPOINT stage_records")
            reader.read_again(why)


def _stage_records(cur, run_id: int, reader: ImsReader) -> dict[str, int]:
    for entity in ENTITIES:
        cur.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {})").format(
                entity.staged(run_id), entity.template
            )
        )
    pipe = _CopyPipe()
    copy_error: list[BaseException] = []

    def copy_memberships():
        try:
            cur.copy_expert(_copy_sql(cur, MEMBERSHIP, run_id), pipe)
        except BaseException as err:  # handed to the reading thread below
            copy_error.append(err)

    copier = threading.Thread(target=copy_memberships, name=f"copy-r{run_id}", daemon=True)
    copier.start()
    with (
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as persons,
        tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as groups,
    ):
        write_membership = csv.writer(pipe.buffer).writerow
        write_person = csv.writer(persons).writerow
        write_group = csv.writer(groups).writerow
        buffer_tell = pipe.buffer.tell
        try:
            for record in reader:
                # tested in order of frequency: memberships outnumber the rest
                cls = type(record)
                if cls is Membership:
                    write_membership(record)
                    if buffer_tell() > _CHUNK:
                        if copy_error:
                            raise copy_error[0]
                        pipe.flush()
                elif cls is MembershipRows:
                    pipe.buffer.write(record)
                    if buffer_tell() > _CHUNK:
                        if copy_error:
                            raise copy_error[0]
                        pipe.flush()
                elif cls is Person:
                    write_person(record)
                else:
                    write_group(record)
        except BaseException as err:
            pipe.close(err)
            copier.join()
            raise
        pipe.close()
        copier.join()
        if copy_error:
            raise copy_error[0]
        rows = {"membership": cur.rowcount}
        for entity, spool in ((PERSON, persons), (GROUP, groups)):
            spool.seek(0)
            cur.copy_expert(_copy_sql(cur, entity, run_id), spool)
            rows[entity.name] = cur.rowcount
    # the planner needs the staged tables' sizes and that their keys are unique, which a small
    # sample tells as well as the default one (30,000 rows of every column, a cost per run)
    cur.execute("SET LOCAL default_statistics_target = 10")
    for entity in ENTITIES:
        # a full file's memberships are only ever joined whole (the diff's hash full join):
        # an index on a million rows would cost a second a day and serve nothing
        if entity is not MEMBERSHIP or reader.file_type != "full":
            cur.execute(
                sql.SQL("CREATE INDEX ON {} ({})").format(entity.staged(run_id), idents(entity.key))
            )
        cur.execute(sql.SQL("ANALYZE {}").format(entity.staged(run_id)))
    cur.execute("RESET default_statistics_target")
    log.info("run %s staged: %s (the fast way: %s)", run_id, rows, reader.plain)
    return rows


def store_problems(cur, run_id: int, result: ValidationResult) -> None:
    """Keep the problems' examples with the run (ids and lines only), by COPY."""
    if not result.problems:
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as f:
        write = row_writer(f)
        for p in result.problems:
            write((run_id, p.entity, p.record_id, p.line, p.reason, p.severity))
        f.seek(0)
        cur.copy_expert(
            "COPY sis.problems (run_id, entity, record_id, line, reason, severity)"
            " FROM STDIN WITH (FORMAT csv)",
            f,
        )


def store_kept(cur, run_id: int, result: ValidationResult) -> None:
    """The keys of the records skipped for an error (all of them), by COPY: their current
    state is kept (see :mod:`sisflow.diff`)."""
    if not result.kept:
        return
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as f:
        write = row_writer(f)
        for (entity, record_id, member_id), (line, reason) in result.kept.items():
            write((run_id, entity, record_id, member_id, line, reason))
        f.seek(0)
        cur.copy_expert(
            "COPY sis.kept (run_id, entity, record_id, member_id, line, reason)"
            " FROM STDIN WITH (FORMAT csv)",
            f,
        )


def check_delta_references(cur, run_id: int, customer: str) -> int:
    """Skip delta memberships that name a person or group found neither in the file nor in the
    customer's current state, or that the file itself deletes; they are listed as problems.
    Returns how many were skipped."""
    staged_m = MEMBERSHIP.staged(run_id)
    staged_p = PERSON.staged(run_id)
    staged_g = BY_NAME["group"].staged(run_id)
    cur.execute(
        sql.SQL(
            """
            WITH bad AS (
                DELETE FROM {m} m
                WHERE m.recstatus IS DISTINCT FROM 3 AND (
                    NOT EXISTS (SELECT 1 FROM {g} g WHERE g.sourcedid = m.group_id
                                AND g.recstatus IS DISTINCT FROM 3)
                    AND NOT EXISTS (SELECT 1 FROM sis.groups g WHERE g.customer = %(c)s
                                    AND g.sourcedid = m.group_id)
                    OR m.idtype = 1
                    AND NOT EXISTS (SELECT 1 FROM {p} p WHERE p.sourcedid = m.member_id
                                    AND p.recstatus IS DISTINCT FROM 3)
                    AND NOT EXISTS (SELECT 1 FROM sis.persons p WHERE p.customer = %(c)s
                                    AND p.sourcedid = m.member_id)
                    OR m.idtype = 2
                    AND NOT EXISTS (SELECT 1 FROM {g} g WHERE g.sourcedid = m.member_id
                                    AND g.recstatus IS DISTINCT FROM 3)
                    AND NOT EXISTS (SELECT 1 FROM sis.groups g WHERE g.customer = %(c)s
                                    AND g.sourcedid = m.member_id)
                )
                RETURNING m.group_id, m.member_id, m.line
            )
            INSERT INTO sis.problems (run_id, entity, record_id, line, reason, severity)
            SELECT %(run)s, 'membership', group_id || '/' || member_id, line,
                   'names a person or group that is neither in the file nor in the current state',
                   'error'
            FROM bad
            """
        ).format(m=staged_m, g=staged_g, p=staged_p),
        {"c": customer, "run": run_id},
    )
    unknown = cur.rowcount
    # a membership added for a person or group that the same file deletes would outlive it
    cur.execute(
        sql.SQL(
            """
            WITH bad AS (
                DELETE FROM {m} m
                WHERE m.recstatus IS DISTINCT FROM 3 AND (
                    EXISTS (SELECT 1 FROM {g} g WHERE g.recstatus = 3
                            AND g.sourcedid IN (m.group_id,
                                                CASE WHEN m.idtype = 2 THEN m.member_id END))
                    OR m.idtype = 1 AND EXISTS (SELECT 1 FROM {p} p WHERE p.recstatus = 3
                                                AND p.sourcedid = m.member_id))
                RETURNING m.group_id, m.member_id, m.line
            )
            INSERT INTO sis.problems (run_id, entity, record_id, line, reason, severity)
            SELECT %(run)s, 'membership', group_id || '/' || member_id, line,
                   'names a person or group that this file deletes', 'error'
            FROM bad
            """
        ).format(m=staged_m, g=staged_g, p=staged_p),
        {"run": run_id},
    )
    return unknown + cur.rowcount


def drop(cur, run_id: int) -> None:
    for entity in ENTITIES:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(entity.staged(run_id)))
    unchanged.drop(cur, run_id)


def keep_names_not_given(cur, run_id: int, customer: str) -> int:
    """A person whose record holds no name at all keeps the names the state has: an absent
    optional element is no value, not an empty one (an export that leaves names out must not
    blank the accounts). Returns how many persons kept their names."""
    cur.execute(
        sql.SQL(
            "UPDATE {p} s SET fn = c.fn, family = c.family, given = c.given FROM sis.persons c"
            " WHERE c.customer = %s AND c.sourcedid = s.sourcedid AND s.fn IS NULL"
            " AND s.family IS NULL AND s.given IS NULL AND s.recstatus IS DISTINCT FROM 3"
        ).format(p=BY_NAME["person"].staged(run_id)),
        (customer,),
    )
    return cur.rowcount


def hold_back_later_years(cur, run_id: int, config: CustomerConfig, year: SchoolYear) -> set[str]:
    """New groups that begin after the run's school year ends (and their memberships) wait
    for the rollover into their year: taken out of the staged file and kept, with the year
    they wait for, so nothing is created for them. A group already in the current state goes
    on as usual. Returns the groups that wait."""
    staged_g, staged_m = BY_NAME["group"].staged(run_id), MEMBERSHIP.staged(run_id)
    cur.execute(
        sql.SQL(
            """
            DELETE FROM {g} g
            WHERE g.begin_date > %(end)s AND g.recstatus IS DISTINCT FROM 3
              AND NOT EXISTS (SELECT 1 FROM sis.groups c WHERE c.customer = %(customer)s
                              AND c.sourcedid = g.sourcedid)
            RETURNING g.sourcedid, g.line, g.begin_date
            """
        ).format(g=staged_g),
        {"end": year.end, "customer": config.id},
    )
    waiting = []
    for sourcedid, line, begins in cur.fetchall():
        label = school_year.containing(begins, config).label
        reason = (
            f"belongs to school year {label}, which is not active yet: it waits for the rollover"
        )
        waiting.append((run_id, "group", sourcedid, line, reason, label))
    if waiting:
        execute_values(
            cur,
            "INSERT INTO sis.kept (run_id, entity, record_id, line, reason, waits_for_year)"
            " VALUES %s",
            waiting,
        )
        cur.execute(
            sql.SQL(
                "DELETE FROM {m} m USING sis.kept k WHERE k.run_id = %(run)s"
                " AND k.waits_for_year IS NOT NULL"
                " AND k.record_id IN (m.group_id, CASE WHEN m.idtype = 2"
                " THEN m.member_id END)"
            ).format(m=staged_m),
            {"run": run_id},
        )
    return {w[2] for w in waiting}
