"""A folder source: the SIS drops its export into a folder; the newest complete one is taken
and copied into the customer's landing zone (:mod:`sisflow.sources.landing`), so that what a run
read stays there even when the SIS overwrites its export."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..errors import FileNotAllowed
from . import landing
from .complete import NothingToFetch, check

__all__ = ["NothingToFetch", "fetch", "inside"]


def inside(path: Path, folder: Path) -> Path | None:
    """``path``'s real path when it lies inside ``folder``'s real path (no link and no ``..``
    leads out of it), else None."""
    real, base = path.resolve(), folder.expanduser().resolve()
    return real if base in real.parents else None


def fetch(customer: str, source, override: str | Path | None = None) -> str:
    """The landed file to import (its path as text): ``override`` if given (checked by the
    caller), else the newest complete export matching the source's pattern."""
    if override:
        if "://" in str(override):  # already in a landing zone in object storage
            if not landing.path_of(str(override)).exists():
                raise NothingToFetch(f"{override} does not exist")
            return str(override)
        chosen = Path(override).resolve()  # given by hand: read where it really lies
        if not chosen.is_file():
            raise NothingToFetch(f"{chosen.name} does not exist")
        return landing.land_file(customer, chosen)
    folder = Path(source.path).expanduser()
    entries = list(folder.iterdir()) if folder.is_dir() else []
    links = sorted(
        p.name for p in entries if p.is_symlink() and fnmatch.fnmatch(p.name, source.pattern)
    )
    if links:
        raise FileNotAllowed(
            f"{', '.join(links[:3])} in {customer}'s source folder {folder} is a symbolic link:"
            " refused, nothing read (an export must be a file in the folder itself)"
        )
    files = [p for p in entries if p.is_file()]
    candidates = sorted(
        (p for p in files if fnmatch.fnmatch(p.name, source.pattern)),
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise NothingToFetch(f"no file matching {source.pattern} in {folder}")
    chosen = candidates[-1]
    check(
        chosen.name,
        {p.name for p in files},
        chosen.stat().st_size,
        lambda: chosen.stat().st_size,
        source,
    )
    return landing.land_file(customer, chosen)
