"""Rows for ``COPY ... FROM STDIN WITH (FORMAT csv)`` that carry any value.

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
