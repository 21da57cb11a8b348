"""The landing zone: where every fetched export lands, and what the stage step reads.

By default a local folder, ``$SISFLOW_HOME/landing/<customer>/``. With ``SISFLOW_LANDING`` set
to an object storage URL (``s3://bucket/sisflow/landing``, ``gs://...``, ``file:///shared/
landing``), it is an Airflow ``ObjectStoragePath`` (its credentials from the Airflow connection
named by ``SISFLOW_LANDING_CONN_ID``), so that a worker reads what another one fetched: a run's
tasks may run on different machines.

A file lands through a temporary name and is renamed when whole, so a reader never sees half a
file. The reader needs a local file (it checksums and parses it in one pass), so a run reads a
temporary local copy of an export in object storage.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import settings


def _remote_root():
    url = os.environ.get("SISFLOW_LANDING")
    if not url or "://" not in url:
        return None
    from ..airflow_connections import object_storage_path

    return object_storage_path(url.rstrip("/"), os.environ.get("SISFLOW_LANDING_CONN_ID"))


def folder(customer: str):
    """The customer's landing folder: a ``Path``, or an ``ObjectStoragePath``."""
    remote = _remote_root()
    if remote is not None:
        path = remote / customer
    else:
        local = os.environ.get("SISFLOW_LANDING")
        path = (Path(local) if local else settings.home() / "landing") / customer
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_of(text: str):
    """A landed file's path from its text form (as it travels between tasks)."""
    if "://" in text:
        from ..airflow_connections import object_storage_path

        return object_storage_path(text, os.environ.get("SISFLOW_LANDING_CONN_ID"))
    return Path(text)


def land(customer: str, name: str, write: Callable) -> str:
    """Land ``name``: ``write(f)`` fills a binary file; returns the landed file's path as text."""
    target_folder = folder(customer)
    target = target_folder / Path(name).name
    part = target_folder / f".{Path(name).name}.part"
    with part.open("wb") as f:
        write(f)
    part.rename(target)
    return str(target)


def land_file(customer: str, local: Path) -> str:
    """Land a local file (a drop folder's export, a file given by hand), keeping its time."""
    target = folder(customer) / local.name
    if isinstance(target, Path) and target.resolve() == local.resolve():
        return str(target)

    def copy(f):
        # never through a link: one put in place after the source folder was checked
        with os.fdopen(os.open(local, os.O_RDONLY | os.O_NOFOLLOW), "rb") as src:
            shutil.copyfileobj(src, f, 1 << 20)

    landed = land(customer, local.name, copy)
    if isinstance(target, Path):
        stamp = local.stat().st_mtime
        os.utime(landed, (stamp, stamp))
    return landed


def within(customer: str, file: str) -> str | None:
    """``file`` as a landed path when it lies in the customer's landing zone (a bare name is
    looked for there), else None."""
    root = folder(customer)
    if isinstance(root, Path):
        path = Path(file) if Path(file).is_absolute() else root / file
        resolved, base = path.resolve(), root.resolve()
        inside = resolved == base or base in resolved.parents
        return str(resolved) if inside else None
    if "/" not in file and file not in ("", ".", ".."):
        return str(root / file)
    return file if file.startswith(f"{root}/") and "/../" not in file else None


@contextmanager
def local_copy(text: str) -> Iterator[str]:
    """A local file with the landed export's bytes: itself when local, else a temporary copy."""
    path = path_of(text)
    if isinstance(path, Path):
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="sisflow-read-") as tmp:
        local = Path(tmp) / path.name
        with path.open("rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield str(local)


def prune(customer: str, days: float, keep: set[str]) -> list[str]:
    """Remove landed files older than ``days`` (by when they landed), except the names in
    ``keep`` (the current run's and the last committed run's files); returns what went."""
    root = folder(customer)
    cutoff = time.time() - days * 86400
    gone = []
    for path in root.iterdir():
        if path.name in keep or not path.is_file():
            continue
        info = path.stat()
        landed = info.st_ctime if isinstance(path, Path) else info.st_mtime
        if landed < cutoff:
            path.unlink()
            gone.append(path.name)
    return sorted(gone)
