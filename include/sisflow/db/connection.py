"""Connections to the import database: a Postgres server, or an embedded one by default.

Without ``SISFLOW_DATABASE_URL`` sisflow starts the Postgres server that the ``pgserver``
package ships, with its data under ``$SISFLOW_HOME/pg``, and reuses it on the next start.
pgserver counts the processes that hold it and stops the server when the last one exits.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager, suppress

import psycopg2
import psycopg2.extensions

from .. import settings
from .migrations import migrate

log = logging.getLogger(__name__)

_EMBEDDED_DB = "sisflow"
_embedded = None  # the pgserver handle, kept for the life of the process
_migrated: set[str] = set()


_CREATE_LOCK = 7_262_027  # pg_advisory_lock key: one process creates the database


#: beside the embedded server's folder while ``make airflow`` runs on it: then no sisflow
#: process stops the server when it exits (Airflow's metadata lives there too)
KEPT_MARKER = "pg.kept"


def kept_for_airflow() -> bool:
    return (settings.home() / KEPT_MARKER).exists()


def _forget_dead_holders(folder) -> None:
    """pgserver stops its server when the last process that holds it exits, and counts the
    holders in a file; a holder killed by SIGKILL stays in that file for ever, and the server
    with it. Dead holders are taken out first, under pgserver's own lock."""
    import json

    import psutil
    from pgserver.postgres_server import PostgresServer

    handles = folder / ".handle_pids.json"
    with PostgresServer._lock:
        if not handles.exists():
            return
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [pid for pid in pids if psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _embedded_url() -> str:
    global _embedded
    if _embedded is None:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, cron); /tmp is fine here
            warnings.simplefilter("ignore")
            try:
                import pgserver  # imported late: only the embedded default needs it
            except ModuleNotFoundError:
                raise RuntimeError(
                    "SISFLOW_DATABASE_URL is not set, and the embedded Postgres is not"
                    " installed (pip install 'sisflow[embedded]'): set SISFLOW_DATABASE_URL"
                ) from None

        folder = settings.home() / "pg"
        if folder.exists():
            _forget_dead_holders(folder)
        # made here, race-free: pgserver checks and makes it outside its lock, and of many
        # processes starting on a fresh state folder one then failed with "File exists"
        folder.mkdir(parents=True, exist_ok=True)
        # the last holder to exit stops the server, unless make airflow keeps it running
        _embedded = pgserver.get_server(folder, cleanup_mode=None if kept_for_airflow() else "stop")
        log.info("embedded Postgres at %s", folder)
        _create_once(_embedded.get_uri("postgres"))
    return _embedded.get_uri(_EMBEDDED_DB)


def describe(url: str | None = None) -> str:
    """Which import database a command used, in words and without a password."""
    from urllib.parse import parse_qs, urlsplit

    url = url or settings.database_url()
    if not url:
        return f"the embedded server in {settings.home() / 'pg'}"
    try:
        parts = urlsplit(url)
        host = parts.hostname or (parse_qs(parts.query).get("host") or ["?"])[0]
        if "://" in url:
            return f"database '{parts.path.lstrip('/') or '?'}' on {host}:{parts.port or 5432}"
    except ValueError:
        pass
    return "the server named in SISFLOW_DATABASE_URL"


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


_URL_HELP = (
    "SISFLOW_DATABASE_URL is not a valid Postgres URL: write it as postgresql://USER:"
    "PASSWORD@HOST:PORT/DATABASE, with any @, :, / or space in the password"
    " percent-encoded (%40, %3A, %2F, %20)"
)


def _secrets(url: str) -> list[str]:
    """The password of a well-formed URL or key=value string, as written and decoded."""
    from urllib.parse import unquote, urlsplit

    found = []
    with suppress(psycopg2.Error):
        found.append(psycopg2.extensions.parse_dsn(url).get("password") or "")
    with suppress(ValueError):
        found.append(urlsplit(url).password or "")
    found += [unquote(f) for f in found]
    return sorted({f for f in found if f}, key=len, reverse=True)


def _checked(url: str) -> None:
    """Refuse a URL that cannot be read as one, before psycopg2 quotes parts of it (a
    password with an unencoded @ or a space, or no scheme, would be printed): the message
    holds nothing of the URL."""
    from urllib.parse import urlsplit

    if "://" in url:
        scheme, _, rest = url.partition("://")
        authority = rest.split("/", 1)[0].split("?", 1)[0]
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises for a port that is not a number)
        except ValueError:
            raise DatabaseUnavailable(_URL_HELP) from None
        if (
            scheme not in ("postgresql", "postgres")
            or authority.count("@") > 1
            or any(c.isspace() for c in url)
        ):
            raise DatabaseUnavailable(_URL_HELP)
        return
    try:
        psycopg2.extensions.parse_dsn(url)
    except psycopg2.Error:
        raise DatabaseUnavailable(_URL_HELP) from None
    if "=" not in url:
        raise DatabaseUnavailable(_URL_HELP)


def _masked(text: str, url: str) -> str:
    """``text`` with the URL's password blotted out."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def connect(url: str | None = None) -> psycopg2.extensions.connection:
    """A connection to the import database, with the schema migrated to the newest version."""
    url = url or database_url()
    _checked(url)
    try:
        conn = psycopg2.connect(url, client_encoding="UTF8")
    except psycopg2.Error as err:
        raise DatabaseUnavailable(
            "cannot connect to the import database (SISFLOW_DATABASE_URL): "
            + _masked(str(err).strip(), url)
        ) from None
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
