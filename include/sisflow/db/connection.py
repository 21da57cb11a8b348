"""Connections to the import database: a Postgres server, or an embedded one by default.

Without ``SISFLOW_DATABASE_URL`` sisflow starts the Postgres server that the ``pgserver``
package ships, with its data under ``$SISFLOW_HOME/pg``, and reuses it on the next start.
pgserver counts the processes that hold it and stops the server when the last one exits.
"""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions

from .. import settings
from .migrations import migrate

log = logging.getLogger(__name__)

_EMBEDDED_DB = "sisflow"
_embedded = None  # the pgserver handle, kept for the life of the process
_migrated: set[str] = set()


_CREATE_LOCK = 7_262_027  # pg_advisory_lock key: one process creates the database


def _embedded_url() -> str:
    global _embedded
    if _embedded is None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, cron); /tmp is fine here
            warnings.simplefilter("ignore")
            import pgserver  # imported late: only the embedded default needs it

        folder = settings.home() / "pg"
        _embedded = pgserver.get_server(folder)
        log.info("embedded Postgres at %s", folder)
        _create_once(_embedded.get_uri("postgres"))
    return _embedded.get_uri(_EMBEDDED_DB)


def _create_once(admin_url: str) -> None:
    """Create the import database unless it exists. Many processes may start at once against a
    fresh state folder (a scheduler starting 40 tasks): a session advisory lock lets one of
    them create it while the others wait, then find it there."""
    conn = psycopg2.connect(admin_url)
    try:
        conn.autocommit = True  # CREATE DATABASE runs outside a transaction
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_CREATE_LOCK,))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_EMBEDDED_DB,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE DATABASE {_EMBEDDED_DB} ENCODING 'UTF8' TEMPLATE template0")
            cur.execute("SELECT pg_advisory_unlock(%s)", (_CREATE_LOCK,))
    finally:
        conn.close()


def database_url() -> str:
    return settings.database_url() or _embedded_url()


class DatabaseUnavailable(Exception):
    """The import database cannot be reached; the message never holds the URL's password."""


def _masked(text: str, url: str) -> str:
    """``text`` with the URL's password (and any password=... setting) blotted out."""
    from urllib.parse import urlsplit

    secrets = []
    try:
        if urlsplit(url).password:
            secrets.append(urlsplit(url).password)
    except ValueError:  # a port that is not a number, say: the URL cannot be split
        pass
    secrets += re.findall(r"://[^:/@\s]*:([^@\s]+)@", url)
    secrets += re.findall(r"password\s*=\s*'?([^'\s]+)", url)
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """A connection to the import database, with the schema migrated to the newest version."""
    url = url or database_url()
    try:
        conn = psycopg2.connect(url, client_encoding="UTF8")
    except psycopg2.Error as err:
        raise DatabaseUnavailable(
            "cannot connect to the import database (SISFLOW_DATABASE_URL): "
            + _masked(str(err).strip(), url)) from None
    if url not in _migrated:
        migrate(conn)
        _migrated.add(url)
    return conn


@contextmanager
def connection(url: str | None = None):
    conn = connect(url)
    try:
        yield conn
    finally:
        conn.close()
