"""Rows for ``COPY ... FROM STDIN`` that carry any value.

CSV needs no escaping of backslashes or tabs, and Python's writer quotes fields with quotes,
commas and line breaks. One value is left: a line holding only ``\\.`` is COPY's end-of-data
marker, so a one-column row whose value is ``\\.`` (a sync key, say) would end the COPY early
and silently drop the rows after it. Quoted, it is data. Only one-column rows can form such a
line: wider rows always hold a comma.
"""

from __future__ import annotations

import csv

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
