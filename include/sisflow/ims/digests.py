"""What each clean record of a file was, by the digest of its text: the day's change without
reading the day's file.

Nearly every record of a daily export is, byte for byte, what it was the day before. A record
read the fast way without a problem (a plain person, group or <membership>, see :mod:`.plain`)
is kept here by the SHA-1 of its text, with its kind, its id, how many rows it staged and (a
group) its parent. The next run of the same customer looks each record's digest up: a record
found is not read nor staged, because the current state holds exactly what it gave (see
:mod:`sisflow.unchanged` for when that holds); the diff then leaves the state's rows
of those ids out of its join, so what it finds is what the whole file would have given.

Only text decides: a record is the same when its bytes are, whatever its line. The table is
stored packed (one ``bytea`` per run, a few MB for a hundred thousand persons), because it is
read and written whole and a row per record would cost more than reading the records.
"""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Iterator

#: the kinds of record a digest stands for, one byte each in the packed form
KINDS = ("person", "group", "membership")
_KIND_BYTE = {k: i for i, k in enumerate(KINDS)}
_SIZE = 20  # SHA-1: not for security here, for telling an edited record from the old one
_HEAD = struct.Struct("<4sI")
_MAGIC = b"sfd1"
_SEP = "\x00"  # XML text cannot hold it, so no id or parent does


def digest(data: bytes) -> bytes:
    """A record's digest, of its bytes as written."""
    return hashlib.sha1(data, usedforsecurity=False).digest()


class Digests:
    """The clean records of one file: parallel columns, entry ``i`` being the record of
    digest ``keys[i]``, of kind ``KINDS[kinds[i]]``, id ``names[2*i]``, parent
    ``names[2*i+1]`` ("" for none), which staged ``rows[i]`` rows (1 for a person or group,
    its members for a <membership>). Columns, not an object per record: a hundred thousand
    of them are read, looked up and written on every run."""

    def __init__(self):
        self.keys: list[bytes] = []
        self.kinds = bytearray()
        self.rows = array("I")
        self.names: list[str] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: bytes, kind: str, record_id: str, rows: int, parent: str = "") -> None:
        self.keys.append(key)
        self.kinds.append(_KIND_BYTE[kind])
        self.rows.append(rows)
        self.names += (record_id, parent)

    def index(self) -> dict[bytes, int]:
        """digest -> entry; a digest twice (the same text twice: one record, one duplicate)
        is in neither, so both are read."""
        found: dict[bytes, int] = {}
        twice = []
        for i, key in enumerate(self.keys):
            if found.setdefault(key, i) != i:
                twice.append(key)
        for key in twice:
            found.pop(key, None)
        return found

    def taken(self, entries: list[int]) -> Digests:
        """A table of these entries, in this order."""
        table = Digests()
        keys, kinds, rows, names = self.keys, self.kinds, self.rows, self.names
        table.keys = [keys[i] for i in entries]
        table.kinds = bytearray(kinds[i] for i in entries)
        table.rows = array("I", (rows[i] for i in entries))
        table.names = [name for i in entries for name in (names[2 * i], names[2 * i + 1])]
        return table

    def extend(self, other: Digests) -> None:
        self.keys += other.keys
        self.kinds += other.kinds
        self.rows += other.rows
        self.names += other.names

    def without(self, kind: str, ids: set[str]) -> Digests:
        """The table less the records of these ids (staged, then changed by a rule applied
        after reading)."""
        code, names = _KIND_BYTE[kind], self.names
        return self.taken(
            [i for i, k in enumerate(self.kinds) if k != code or names[2 * i] not in ids]
        )

    def packed(self, step: int = 50_000) -> Iterator[bytes]:
        """The packed form in pieces of at most ``step`` entries' keys or names: what the
        large municipality's table is stored from without the whole of it at once."""
        keys, names = self.keys, self.names
        yield _HEAD.pack(_MAGIC, len(keys))
        for i in range(0, len(keys), step):
            yield b"".join(keys[i : i + step])
        yield bytes(self.kinds)
        yield self.rows.tobytes()
        for i in range(0, len(names), step):
            yield ((_SEP if i else "") + _SEP.join(names[i : i + step])).encode()

    @classmethod
    def unpack(cls, data: bytes | bytearray) -> Digests:
        magic, n = _HEAD.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a packed digest table")
        at = _HEAD.size
        table = cls()
        view = memoryview(data)  # a key of its own bytes, not a copy of the whole first
        table.keys = [bytes(view[i : i + _SIZE]) for i in range(at, at + n * _SIZE, _SIZE)]
        at += n * _SIZE
        table.kinds = bytearray(data[at : at + n])
        at += n
        table.rows.frombytes(data[at : at + 4 * n])
        at += 4 * n
        table.names = view[at:].tobytes().decode().split(_SEP) if n else []
        view.release()
        if (len(table.keys), len(table.kinds), len(table.rows), len(table.names)) != (
            n,
            n,
            n,
            2 * n,
        ):
            raise ValueError("a packed digest table cut short")
        return table
