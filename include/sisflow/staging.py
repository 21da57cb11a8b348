"""Staging: a file's good records into per-run tables of the import database, by COPY.

The file is read once, straight into one CSV spool file per entity (in memory up to a few MB,
then on disk), and only when the whole file has been read without a fatal problem are the
spools copied into the database, in one transaction. A file rejected half-way therefore
leaves nothing behind.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass

from psycopg2 import sql

from .entities import BY_NAME, ENTITIES, MEMBERSHIP, PERSON, idents
from .ims.reader import ImsReader
from .ims.records import Membership, Person, ValidationResult

log = logging.getLogger(__name__)

_SPOOL_IN_MEMORY = 8 << 20


@dataclass
class Spooled:
    """A file read into CSV spools, ready to copy; close() frees the spools."""

    result: ValidationResult
    files: dict[str, tempfile.SpooledTemporaryFile]

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def spool(reader: ImsReader) -> Spooled:
    """Read a file into CSV spools. Raises FatalFileError (spools already freed) on a bad file;
    ``reader.result`` then says why."""
    with ExitStack() as stack:
        files = {
            e.name: stack.enter_context(
                tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY, "w+", encoding="utf-8", newline="")
            )
            for e in ENTITIES
        }
        writers = {name: csv.writer(f).writerow for name, f in files.items()}
        write_person, write_group, write_membership = (
            writers["person"], writers["group"], writers["membership"]
        )
        for record in reader:
            # tested in order of frequency: memberships outnumber the rest
            cls = type(record)
            if cls is Membership:
                write_membership(record)
            elif cls is Person:
                write_person(record)
            else:
                write_group(record)
        stack.pop_all()  # the file was good: keep the spools open for the caller
    for f in files.values():
        f.seek(0)
    return Spooled(reader.result, files)


def load(cur, run_id: int, spooled: Spooled) -> dict[str, int]:
    """Create the run's staging tables and COPY the spools into them; rows per entity."""
    rows = {}
    for entity in ENTITIES:
        table = entity.staged(run_id)
        cur.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} (LIKE {})").format(table, entity.template)
        )
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            table, idents(entity.staged_columns)
        )
        cur.copy_expert(copy.as_string(cur), spooled.files[entity.name])
        rows[entity.name] = cur.rowcount
    for entity in ENTITIES:
        cur.execute(
            sql.SQL("CREATE INDEX ON {} ({})").format(entity.staged(run_id), idents(entity.key))
        )
        cur.execute(sql.SQL("ANALYZE {}").format(entity.staged(run_id)))
    log.info("run %s staged: %s", run_id, rows)
    return rows


def store_problems(cur, run_id: int, result: ValidationResult) -> None:
    """Keep the problems' examples with the run (ids and lines only), by COPY."""
    if not result.problems:
        return
    with tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY, "w+", encoding="utf-8", newline="") as f:
        write = csv.writer(f).writerow
        for p in result.problems:
            write((run_id, p.entity, p.record_id, p.line, p.reason, p.severity))
        f.seek(0)
        cur.copy_expert(
            "COPY sis.problems (run_id, entity, record_id, line, reason, severity)"
            " FROM STDIN WITH (FORMAT csv)",
            f,
        )


def check_delta_references(cur, run_id: int, customer: str) -> int:
    """Skip delta memberships that name a person or group found neither in the file nor in the
    customer's current state; they are listed as problems. Returns how many were skipped."""
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
    return cur.rowcount


def drop(cur, run_id: int) -> None:
    for entity in ENTITIES:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(entity.staged(run_id)))
