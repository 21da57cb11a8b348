"""An SFTP source: the SIS pushes its exports to an SFTP server; the newest complete one is
downloaded into the landing zone.

The client is a connected ``paramiko.SFTPClient``: the SFTP provider's ``SFTPHook`` makes it
from the Airflow connection named in the customer's file (host, port, login, password or key,
and the server's host key in the extra ``host_key``: see :mod:`sisflow.airflow_connections`).
"""

from __future__ import annotations

import fnmatch
import posixpath
import stat

from . import landing
from .complete import NothingToFetch, SourceError, check


def where(source) -> tuple[str, str]:
    """(remote folder, file pattern): ``path`` is a folder, or a file name with its folder."""
    path = source.path.rstrip("/") or "/"
    if any(ch in posixpath.basename(path) for ch in "*?[") or path.endswith(".xml"):
        return posixpath.dirname(path) or "/", posixpath.basename(path)
    return path, source.pattern


def fetch(customer: str, source, client) -> str:
    folder, pattern = where(source)
    try:
        entries = client.listdir_attr(folder)
    except OSError as err:
        raise SourceError(
            f"cannot list {folder} on the SFTP server: {err.strerror or err}"
        ) from None
    names = {e.filename for e in entries}
    files = sorted(
        (
            e
            for e in entries
            if stat.S_ISREG(e.st_mode or 0) and fnmatch.fnmatch(e.filename, pattern)
        ),
        key=lambda e: e.st_mtime or 0,
    )
    if not files:
        raise NothingToFetch(f"no file matching {pattern} in {folder} on the SFTP server")
    newest = files[-1]
    remote = posixpath.join(folder, newest.filename)
    check(
        newest.filename,
        names,
        newest.st_size or 0,
        lambda: client.stat(remote).st_size,
        source,
    )
    return landing.land(customer, newest.filename, lambda f: client.getfo(remote, f))
