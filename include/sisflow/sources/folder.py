"""A folder source: the SIS drops its export into a folder; the newest complete one is taken.

Every fetched file is copied into the customer's landing zone (``$SISFLOW_HOME/landing/
<customer>/``), so that what a run read stays on disk even when the SIS overwrites its export.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from .. import settings
from .complete import NothingToFetch, check

__all__ = ["NothingToFetch", "fetch", "land", "landing_dir", "prune"]


def landing_dir(customer: str) -> Path:
    folder = settings.home() / "landing" / customer
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def land(customer: str, chosen: Path) -> Path:
    """Copy a file into the landing zone (through a temporary name: never half a file)."""
    target = landing_dir(customer) / chosen.name
    if chosen.resolve() != target.resolve():
        part = target.with_name(f".{target.name}.part")
        shutil.copy2(chosen, part)
        part.replace(target)
    return target


def fetch(customer: str, source, override: str | Path | None = None) -> Path:
    """The file to import, copied into the landing zone: ``override`` if given (checked by
    the caller), else the newest complete export matching the source's pattern."""
    if override:
        chosen = Path(override)
        if not chosen.is_file():
            raise NothingToFetch(f"{chosen.name} does not exist")
        return land(customer, chosen)
    folder = Path(source.path)
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    candidates = sorted((p for p in files if fnmatch.fnmatch(p.name, source.pattern)),
                        key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise NothingToFetch(f"no file matching {source.pattern} in {folder}")
    chosen = candidates[-1]
    check(chosen.name, {p.name for p in files}, chosen.stat().st_size,
          lambda: chosen.stat().st_size, done_marker=source.done_marker,
          stable_seconds=source.stable_seconds)
    return land(customer, chosen)


def prune(customer: str, days: float, keep: set[str]) -> list[str]:
    """Remove landed files older than ``days`` (by when they landed), except the names in
    ``keep`` (the current run's and the last committed run's files); returns what went."""
    import time

    folder = landing_dir(customer)
    cutoff = time.time() - days * 86400
    gone = []
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep and path.stat().st_ctime < cutoff:
            path.unlink()
            gone.append(path.name)
    return sorted(gone)
