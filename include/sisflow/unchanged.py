"""Records taken as unchanged: a day's run reads and stages only what changed.

A run of a full file keeps the digests of its clean records (:mod:`sisflow.ims.digests`); the
next run of the customer takes a record whose digest it finds there as unchanged, lists its
id in a table of the run (``sis.staged_unchanged_r<run>``) and stages the rest. The diff
then joins the staged records to the current state less the rows of those ids
(:func:`state_rows`), which gives the same change set as the whole file would have: the state
holds exactly what those records gave.

That holds only while nothing but runs of full files changed the state since the run whose
digests are taken (an undo is a run of its own; an undone relink or a drift repair is not),
and every run read the file for the same school year; :func:`known` gives the digests only
then. A delay-delete window does not break it: the import database takes a deletion at once,
only the LMS's side waits. What a record gave also depends on the rest of the file: the
reader checks what it can on the way (an id read twice, a <membership> before its group),
and :func:`names_gone` what it can only at the end (a member whose person is no longer in the
file); when that fails the file is read again, every record of it.
"""

from __future__ import annotations

import binascii
import csv
import json
import logging
import re
import tempfile
from collections.abc import Iterable
from itertools import islice

from psycopg2 import sql

from . import drift, identity
from .db.copy import text_line
from .entities import GROUP, MEMBERSHIP, PERSON, Entity
from .ims.digests import Digests

log = logging.getLogger(__name__)

#: how much of a stored digest table one statement reads back
_SLICE = 4 << 20

#: what CSV must quote in a value, besides the comma and line break counted
_QUOTED = re.compile(r'["\r]')

#: the state's column that says which record a row came from: a <membership> is one record
#: per group
_UNIT = {"person": "sourcedid", "group": "sourcedid", "membership": "group_id"}


def table(run_id: int) -> sql.Identifier:
    return sql.Identifier("sis", _name(run_id))


def _name(run_id: int) -> str:
    return f"staged_unchanged_r{int(run_id)}"


def basis(config, school_year: dict | None) -> str:
    """What reading a record depends on besides its text: digests made on another basis are
    not used. A new school year is read whole: a rollover's readiness checks look at every
    staged person. (Whether new groups of a later year are held back is not in it: a held
    group's records are never kept as clean, and one already in the state is not held.)"""
    return json.dumps(
        {"file_type": config.file_type, "school_year": (school_year or {}).get("label")},
        sort_keys=True,
    )


def known(cur, customer: str, committed: dict | None, of_basis: str) -> Digests | None:
    """The digests a run may take records as unchanged by: those of the customer's last
    committed run, when the current state is still exactly what its file gave."""
    if committed is None:
        return None
    run_id = committed["id"]
    cur.execute(
        "SELECT basis, octet_length(digests) FROM sis.run_digests WHERE run_id = %s", (run_id,)
    )
    row = cur.fetchone()
    if row is None or row[0] != of_basis:
        return None
    if identity.undone_since(cur, customer, run_id) or drift.repaired_since(cur, customer, run_id):
        return None
    # in slices (the column is stored uncompressed, so each is read alone): the whole value
    # at once is held three times over on its way, as hex text, as a buffer and as bytes
    packed = bytearray()
    for at in range(0, row[1], _SLICE):
        cur.execute(
            "SELECT substring(digests FROM %s FOR %s) FROM sis.run_digests WHERE run_id = %s",
            (at + 1, _SLICE, run_id),
        )
        packed += cur.fetchone()[0]
    return Digests.unpack(packed)


def store(cur, run_id: int, customer: str, of_basis: str, digests: Digests | None) -> None:
    """Keep this run's digests, and let go of those no run will take again: the customer's
    other runs' but the last committed one's (a run still pending may yet be superseded)."""
    cur.execute(
        "DELETE FROM sis.run_digests d WHERE d.customer = %(c)s AND (d.run_id = %(run)s"
        " OR d.run_id <> COALESCE((SELECT max(id) FROM sis.runs WHERE customer = %(c)s"
        " AND status = 'committed'), 0))",
        {"c": customer, "run": run_id},
    )
    if digests is None or not len(digests):
        return
    # by COPY, as hex written piece by piece to a file: as a parameter, a table of 10 MB is
    # quoted into a statement of 20 MB and copied twice more on its way
    with tempfile.TemporaryFile("w+b") as f:
        f.write((text_line((run_id, customer, of_basis)).rstrip("\n") + "\t\\\\x").encode())
        for piece in digests.packed():
            f.write(binascii.hexlify(piece))
        f.write(b"\n")
        f.seek(0)
        cur.copy_expert("COPY sis.run_digests (run_id, customer, basis, digests) FROM STDIN", f)


def stage(cur, run_id: int, unchanged: Iterable[tuple[str, str]]) -> int:
    """The run's table of the (kind, id) taken as unchanged, by COPY; how many."""
    ident = table(run_id)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
    cur.execute(
        sql.SQL("CREATE UNLOGGED TABLE {} (kind text NOT NULL, id text NOT NULL)").format(ident)
    )
    n = 0
    pairs = iter(unchanged)
    # a temporary file, not memory: a StringIO read back holds four bytes a character
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as f:
        quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows
        # rows joined a piece at a time: the ids of records read the fast way need no
        # quoting (a writer's call per row took longer than the COPY); where one would, a
        # writer quotes the piece (every value: a lone carriage return is quoted by none)
        while piece := list(islice(pairs, 10_000)):
            text = "".join([f"{kind},{record_id}\n" for kind, record_id in piece])
            if text.count(",") == text.count("\n") == len(piece) and not _QUOTED.search(text):
                f.write(text)
            else:
                quoted(piece)
            n += len(piece)
        if not n:
            cur.execute(sql.SQL("DROP TABLE {}").format(ident))
            return 0
        f.seek(0)
        cur.copy_expert(
            sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv)").format(ident).as_string(cur), f
        )
    cur.execute(sql.SQL("ANALYZE {}").format(ident))
    return n


def exists(cur, run_id: int) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"sis.{_name(run_id)}",))
    return cur.fetchone()[0]


def drop(cur, run_id: int) -> None:
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table(run_id)))


def state_rows(entity: Entity, run_id: int | None) -> sql.Composable:
    """A condition on the state's rows ``c``: not of a record taken as unchanged."""
    if run_id is None:
        return sql.SQL("TRUE")
    return sql.SQL(
        "NOT EXISTS (SELECT 1 FROM {t} u WHERE u.kind = {kind} AND u.id = {col})"
    ).format(t=table(run_id), kind=sql.Literal(entity.name), col=sql.Identifier(_UNIT[entity.name]))


def names_gone(cur, run_id: int, customer: str) -> bool:
    """Whether a <membership> taken as unchanged names a person or group (or is of a group)
    that is not in the file as a record read well: the whole file would have listed its
    member as a problem and left it out. The state's memberships name only the state's
    persons and groups, so what is looked for is those of them neither unchanged nor staged."""
    u = table(run_id)
    gone = {}
    for entity in (PERSON, GROUP):
        cur.execute(
            sql.SQL(
                "SELECT c.sourcedid FROM {state} c WHERE c.customer = %s"
                " AND NOT EXISTS (SELECT 1 FROM {u} x WHERE x.kind = {kind} AND x.id = c.sourcedid)"
                " AND NOT EXISTS (SELECT 1 FROM {staged} s WHERE s.sourcedid = c.sourcedid)"
            ).format(
                state=entity.table, u=u, kind=sql.Literal(entity.name), staged=entity.staged(run_id)
            ),
            (customer,),
        )
        gone[entity.name] = [r[0] for r in cur.fetchall()]
    if not gone["person"] and not gone["group"]:
        return False
    cur.execute(
        sql.SQL(
            """
            SELECT EXISTS (
                SELECT 1 FROM {state} m JOIN {u} x ON x.kind = 'membership' AND x.id = m.group_id
                WHERE m.customer = %(c)s
                  AND (m.group_id = ANY(%(groups)s)
                       OR m.idtype = 1 AND m.member_id = ANY(%(persons)s)
                       OR m.idtype = 2 AND m.member_id = ANY(%(groups)s)))
            """
        ).format(state=MEMBERSHIP.table, u=u),
        {"c": customer, "persons": gone["person"], "groups": gone["group"]},
    )
    found = cur.fetchone()[0]
    if found:
        log.info(
            "run %s: a <membership> taken as unchanged names %s person(s) or %s group(s) no"
            " longer in the file",
            run_id,
            len(gone["person"]),
            len(gone["group"]),
        )
    return found
