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
import itertools
import struct
from array import array
from collections.abc import Iterable, Iterator

#: the kinds of record a digest stands for, one byte each in the packed form
KINDS = ("person", "group", "membership")
_KIND_BYTE = {k: i for i, k in enumerate(KINDS)}
_SIZE = 20  # SHA-1: not for security here, for telling an edited record from the old one
_HEAD = struct.Struct("<4sI")
_MAGIC = b"sfd1"
_SEP = 0  # NUL: XML text cannot hold it, so no id or parent does
_PIECE = 1 << 20  # bytes of the packed form handed on at a time
_STEP = 50_000  # entries copied one by one at a time
_RUN = 16  # consecutive entries copied as slices, from so many


def digest(data: bytes) -> bytes:
    """A record's digest, of its bytes as written."""
    return hashlib.sha1(data, usedforsecurity=False).digest()


class Digests:
    """The clean records of one file: parallel packed columns, entry ``i`` being the record
    of digest :meth:`key` ``(i)``, of kind :meth:`kind` ``(i)``, id :meth:`name` ``(2*i)``,
    parent :meth:`name` ``(2*i+1)`` ("" for none), which staged ``rows[i]`` rows (1 for a
    person or group, its members for a <membership>). Bytes, not an object per record or per
    name: a hundred thousand entries are read, looked up and written on every run, and as
    objects they made up most of what a run of a large municipality holds."""

    def __init__(self):
        self._keys = bytearray()
        self.kinds = bytearray()
        self.rows = array("I")
        # the names as they are packed (UTF-8, one NUL between two); name j is the bytes
        # between _bounds[j] + 1 and _bounds[j + 1]
        self._names = bytearray()
        self._bounds = array("q", (-1,))

    def __len__(self) -> int:
        return len(self.kinds)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Digests):
            return NotImplemented
        mine = (self._keys, self.kinds, self.rows, self._names, self._bounds)
        return mine == (other._keys, other.kinds, other.rows, other._names, other._bounds)

    def key(self, i: int) -> bytes:
        return bytes(self._keys[i * _SIZE : (i + 1) * _SIZE])

    def kind(self, i: int) -> str:
        return KINDS[self.kinds[i]]

    def name(self, j: int) -> str:
        """Name ``j``: the id of entry ``j // 2`` when ``j`` is even, its parent when odd."""
        return self._names[self._bounds[j] + 1 : self._bounds[j + 1]].decode()

    def add(self, key: bytes, kind: str, record_id: str, rows: int, parent: str = "") -> None:
        self._keys += key
        self.kinds.append(_KIND_BYTE[kind])
        self.rows.append(rows)
        names, bounds = self._names, self._bounds
        if len(bounds) > 1:
            names.append(_SEP)
        names += record_id.encode()
        bounds.append(len(names))
        names.append(_SEP)
        names += parent.encode()
        bounds.append(len(names))

    def index(self) -> dict[bytes, int]:
        """digest -> entry; a digest twice (the same text twice: one record, one duplicate)
        is in neither, so both are read."""
        found: dict[bytes, int] = {}
        twice = []
        keys = memoryview(self._keys)
        for i in range(len(self)):
            key = keys[i * _SIZE : (i + 1) * _SIZE].tobytes()
            if found.setdefault(key, i) != i:
                twice.append(key)
        keys.release()
        for key in twice:
            found.pop(key, None)
        return found

    def taken(self, entries: Iterable[int]) -> Digests:
        """A table of these entries, in this order. A 1% day writes back every entry but a
        few, mostly in the order of the day before: a run of consecutive entries is copied
        as slices of the columns, the others an entry at a time."""
        table = Digests()
        order = array("I", entries)
        single: list[int] = []
        start = 0
        for k in range(1, len(order) + 1):
            if k < len(order) and order[k] == order[k - 1] + 1:
                continue
            first, end = order[start], order[k - 1] + 1
            if end - first >= _RUN:
                table._append_each(self, single)
                single = []
                table._append_run(self, first, end)
            else:
                single.extend(range(first, end))
            start = k
        table._append_each(self, single)
        return table

    def _append_run(self, other: Digests, first: int, end: int) -> None:
        """Append ``other``'s entries ``first`` to ``end - 1``."""
        if end <= first:
            return
        bounds = other._bounds
        begin, stop = bounds[2 * first] + 1, bounds[2 * end]  # their names
        shift = (len(self._names) + 1 if len(self) else 0) - begin
        if len(self):
            self._names.append(_SEP)
        self._keys += other._keys[first * _SIZE : end * _SIZE]
        self.kinds += other.kinds[first:end]
        self.rows += other.rows[first:end]
        self._names += other._names[begin:stop]
        self._bounds.extend(b + shift for b in bounds[2 * first + 1 : 2 * end + 1])

    def _append_each(self, other: Digests, entries: list[int]) -> None:
        """Append ``other``'s entries one by one (a piece at a time, so that their names
        are never all objects at once)."""
        keys, kinds, rows = other._keys, other.kinds, other.rows
        names, bounds = other._names, other._bounds
        for at in range(0, len(entries), _STEP):
            piece = entries[at : at + _STEP]
            self._keys += b"".join([keys[i * _SIZE : (i + 1) * _SIZE] for i in piece])
            self.kinds += bytes([kinds[i] for i in piece])
            self.rows.extend([rows[i] for i in piece])
            spans = [
                names[bounds[j] + 1 : bounds[j + 1]] for i in piece for j in (2 * i, 2 * i + 1)
            ]
            if len(self._bounds) > 1:
                self._names.append(_SEP)
            ends = itertools.accumulate((len(s) + 1 for s in spans), initial=len(self._names) - 1)
            self._names += b"\x00".join(spans)
            self._bounds.extend(itertools.islice(ends, 1, None))

    def extend(self, other: Digests) -> None:
        self._append_run(other, 0, len(other))

    def without(self, kind: str, ids: set[str]) -> Digests:
        """The table less the records of these ids (staged, then changed by a rule applied
        after reading)."""
        code = _KIND_BYTE[kind]
        return self.taken(
            i for i, k in enumerate(self.kinds) if k != code or self.name(2 * i) not in ids
        )

    def packed(self) -> Iterator[bytes]:
        """The packed form in pieces of at most a MB: what the large municipality's table
        is stored from without a copy of the whole of it at once."""
        yield _HEAD.pack(_MAGIC, len(self))
        for column in (self._keys, self.kinds, self.rows, self._names):
            with memoryview(column).cast("B") as view:
                for at in range(0, len(view), _PIECE):
                    yield view[at : at + _PIECE].tobytes()

    @classmethod
    def unpack(cls, data: bytes | bytearray) -> Digests:
        magic, n = _HEAD.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a packed digest table")
        at = _HEAD.size
        table = cls()
        table._keys = bytearray(data[at : at + n * _SIZE])
        at += n * _SIZE
        table.kinds = bytearray(data[at : at + n])
        at += n
        table.rows.frombytes(data[at : at + 4 * n])
        at += 4 * n
        if n:
            table._names = bytearray(data[at:])
            # where each name ends: found a NUL at a time, without a list of all the names
            names, bounds, end = table._names, table._bounds, -1
            while (end := names.find(_SEP, end + 1)) >= 0:
                bounds.append(end)
            bounds.append(len(names))
        if (len(table._keys), len(table.rows), len(table._bounds)) != (n * _SIZE, n, 2 * n + 1):
            raise ValueError("a packed digest table cut short")
        return table
