"""A folder source: the SIS drops its export into a folder; the newest XML file is taken.

The file is copied into the landing zone (``$SISFLOW_HOME/landing/<customer>/``), so that what
a run read stays on disk even when the SIS overwrites its export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import settings


class NothingToFetch(Exception):
    pass


def landing_dir(customer: str) -> Path:
    folder = settings.home() / "landing" / customer
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fetch(customer: str, source_path: str | Path, override: str | Path | None = None) -> Path:
    """The file to import, copied into the landing zone: ``override`` if given, else the newest
    ``*.xml`` in the source folder."""
    if override:
        chosen = Path(override)
        if not chosen.is_file():
            raise NothingToFetch(f"{chosen} does not exist")
    else:
        candidates = sorted(Path(source_path).glob("*.xml"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise NothingToFetch(f"no .xml file in {source_path}")
        chosen = candidates[-1]
    target = landing_dir(customer) / chosen.name
    if chosen.resolve() != target.resolve():
        shutil.copy2(chosen, target)
    return target
