"""When a dropped export counts as complete: a file still being written is never taken.

Two rules, per customer (``source.done_marker``):

- a done-marker: the SIS writes ``<name>.done`` next to the export when it has finished;
- else a stable size: the file's size is the same twice, ``source.stable_seconds`` apart (and
  the file is not empty).

An export that is not complete yet raises :class:`NotReady`; the fetch is tried again later
(the DAG task retries), and the older files are not taken instead: only the newest export may
reach the current state.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class SourceError(Exception):
    """The export could not be fetched; the message says what to check (no secrets)."""


class NothingToFetch(SourceError):
    pass


class NotReady(SourceError):
    pass


def check(
    name: str,
    names: set[str],
    size: int,
    size_again: Callable[[], int],
    *,
    done_marker: bool,
    stable_seconds: float,
    sleep=time.sleep,
) -> None:
    """Raise :class:`NotReady` unless the export ``name`` is complete."""
    if done_marker:
        if f"{name}.done" not in names:
            raise NotReady(f"{name} has no {name}.done marker yet: the SIS is still writing it")
        return
    if size == 0:
        raise NotReady(f"{name} is empty: the SIS is still writing it")
    sleep(stable_seconds)
    later = size_again()
    if later != size:
        raise NotReady(
            f"{name} grew from {size} to {later} bytes in {stable_seconds:g} s: the "
            "SIS is still writing it"
        )
