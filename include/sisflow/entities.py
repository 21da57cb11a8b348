"""The three entities as the import database stores them: table names, keys and columns.

Staging, diff and the current state all build their SQL from these specs, so a column is
named in one place. Column order equals the field order of the reader's records.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg2 import sql

from .ims.records import RECORD_TYPES

_RENAMED = {"begin": "begin_date", "end": "end_date"}  # "end" is reserved in SQL


@dataclass(frozen=True)
class Entity:
    name: str  # person, group, membership
    key: tuple[str, ...]

    @property
    def staged_columns(self) -> tuple[str, ...]:
        """line, recstatus, then the record's own columns."""
        return tuple(_RENAMED.get(f, f) for f in RECORD_TYPES[self.name]._fields)

    @property
    def columns(self) -> tuple[str, ...]:
        """Key and value columns: what the current state and the change rows hold."""
        return self.staged_columns[2:]

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.key)

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier("sis", f"{self.name}s")

    @property
    def changes(self) -> sql.Identifier:
        return sql.Identifier("sis", f"{self.name}_changes")

    def staged(self, run_id: int) -> sql.Identifier:
        return sql.Identifier("sis", f"staged_{self.name}_r{int(run_id)}")

    @property
    def template(self) -> sql.Identifier:
        return sql.Identifier("sis", f"staged_{self.name}_template")


PERSON = Entity("person", ("sourcedid",))
GROUP = Entity("group", ("sourcedid",))
MEMBERSHIP = Entity("membership", ("group_id", "member_id", "idtype", "roletype"))
ENTITIES = (PERSON, GROUP, MEMBERSHIP)
BY_NAME = {e.name: e for e in ENTITIES}


def idents(names, prefix: str | None = None) -> sql.Composed:
    """``a, b, c`` or ``p.a, p.b, p.c`` as SQL identifiers."""
    if prefix:
        return sql.SQL(", ").join(sql.Identifier(prefix, n) for n in names)
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def deferred_match(entity: Entity, alias: str) -> sql.Composed:
    """``alias.k1::text = d.record_key->>'k1' AND ...``: a row against the deferred deletion
    ``d`` (sis.deferred_deletions keeps the key as a JSON object)."""
    return sql.SQL(" AND ").join(
        sql.SQL("{}::text = d.record_key->>{}").format(sql.Identifier(alias, k), sql.Literal(k))
        for k in entity.key
    )


def key_match(entity: Entity, left: str, right: str) -> sql.Composed:
    """``l.k1 = r.k1 AND l.k2 = r.k2``."""
    return sql.SQL(" AND ").join(
        sql.SQL("{} = {}").format(sql.Identifier(left, k), sql.Identifier(right, k))
        for k in entity.key
    )


def username_sql(userids: str) -> str:
    """The login name in a person's ``userids`` (a JSON list of [type, value]): the one typed
    ``username``, else an untyped one (IMS Enterprise 1.1 writes the login name so)."""
    return (
        f"COALESCE((SELECT e->>1 FROM jsonb_array_elements({userids}) e"
        " WHERE e->>0 = 'username' LIMIT 1),"
        f" (SELECT e->>1 FROM jsonb_array_elements({userids}) e"
        " WHERE e->0 = 'null'::jsonb LIMIT 1))"
    )
