"""When a dropped export counts as complete: a file still being written is never taken.

Two rules, per customer (``source.done_marker``):

- a done-marker: the SIS writes ``<name>.done`` next to the export when it has finished;
- else a stable size: the file's size is the same twice, ``source.stable_seconds`` apart (and
  the file is not empty).

An export that is not complete yet raises :class:`StillBeingWritten`; the fetch is tried again later
(the DAG task retries), and the older files are not taken instead: only the newest export may
reach the current state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Source


class SourceError(Exception):
    """The export could not be fetched; the message says what to check (no secrets)."""


class NothingToFetch(SourceError):
    pass


class StillBeingWritten(SourceError):
    pass


def check(
    name: str,
    names: set[str],
    size: int,
    size_again: Callable[[], int],
    source: Source,
    sleep=time.sleep,
) -> None:
    """Raise :class:`StillBeingWritten` unless the export ``name`` is complete: by its ``.done``
    marker when the source says the SIS writes one, else by a size that holds still."""
    done_marker, stable_seconds = source.done_marker, source.stable_seconds
    if done_marker:
        if f"{name}.done" not in names:
            raise StillBeingWritten(
                f"{name} has no {name}.done marker yet: the SIS is still writing it"
            )
        return
    if size == 0:
        raise StillBeingWritten(f"{name} is empty: the SIS is still writing it")
    sleep(stable_seconds)
    later = size_again()
    if later != size:
        raise StillBeingWritten(
            f"{name} grew from {size} to {later} bytes in {stable_seconds:g} s: the "
            "SIS is still writing it"
        )
