"""Rows for ``COPY ... FROM STDIN`` that carry any value.

CSV needs no escaping of backslashes or tabs, and Python's writer quotes fields with quotes,
commas and line breaks. One value is left: a line holding only ``\\.`` is COPY's end-of-data
marker, so a one-column row whose value is ``\\.`` (a sync key, say) would end the COPY early
and silently drop the rows after it. Quoted, it is data. Only one-column rows can form such a
line: wider rows always hold a comma.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable

_END_OF_DATA = "\\."


def row_writer(f):
    """``writerow`` for ``f`` that COPY reads back exactly (None is NULL)."""
    write = csv.writer(f).writerow

    def writerow(row) -> None:
        if len(row) == 1 and row[0] == _END_OF_DATA:
            f.write('"\\."\r\n')
        else:
            write(row)

    return writerow


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def text_line(row) -> str:
    """One line of COPY's text format. Unlike csv, where an empty field is NULL, it keeps an
    empty string apart from None: the readiness checks tell an account without a sync key
    from one whose key is empty, as the LMS does."""
    return "\t".join("\\N" if v is None else str(v).translate(_TEXT_ESCAPES) for v in row) + "\n"


class PiecesFile:
    """A file to ``copy_expert`` whose ``read`` gives the pieces of an iterable in turn: a
    COPY of a large value streamed from a generator, never the whole of it in memory."""

    def __init__(self, pieces: Iterable[bytes]):
        self._pieces = iter(pieces)
        self._piece = b""
        self._at = 0

    def read(self, size: int = 8192) -> bytes:
        while self._at >= len(self._piece):
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._piece, self._at = piece, 0
        out = self._piece[self._at : self._at + size]
        self._at += len(out)
        return out
