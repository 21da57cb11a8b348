"""The rows of a large query a few thousand at a time, from a server-side cursor: a school
owner's hundred thousand persons or accounts never sit in memory at once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

_names = itertools.count()


def streamed(cur, query, params=None, *, size: int = 5_000) -> Iterator[tuple]:
    """The rows of ``query``, run on ``cur``'s connection in its transaction (a server-side
    cursor lives no longer than that)."""
    server = cur.connection.cursor(name=f"sisflow_stream_{next(_names)}")
    server.itersize = size
    try:
        server.execute(query, params)
        yield from server
    finally:
        server.close()
