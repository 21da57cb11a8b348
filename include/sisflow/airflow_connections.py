"""The one module under include/ that touches Airflow: Airflow connections turned into the
plain settings that senders and the Airflow API client take. Imported at run time only."""

from __future__ import annotations

from contextlib import contextmanager

from .errors import Refusal

SENDGRID_CONN_ID = "sisflow_sendgrid"


def _connection(conn_id: str):
    """The Airflow connection, or None when it does not exist (or Airflow is not at hand)."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 (Airflow raises its own "not found" types)
        return None


def sendgrid_settings(conn_id: str = SENDGRID_CONN_ID) -> dict | None:
    """API key (the connection's password), host (optional, for a local test server) and the
    from address (extra ``from_email``); None when the connection does not exist."""
    conn = _connection(conn_id)
    if conn is None:
        return None
    host = conn.host or None
    if host and conn.port:
        host = f"{host}:{conn.port}"
    if host and "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    return {
        "api_key": conn.password,
        "host": host,
        "from_email": conn.extra_dejson.get("from_email"),
    }


SMTP_CONN_ID = "sisflow_smtp"


def smtp_settings(conn_id: str = SMTP_CONN_ID) -> dict | None:
    """Host, port, login, password and STARTTLS (extra ``starttls: true``) of an SMTP server,
    with the from address (extra ``from_email``); None when the connection does not exist."""
    conn = _connection(conn_id)
    if conn is None:
        return None
    extra = conn.extra_dejson
    return {
        "host": conn.host or "localhost",
        "port": conn.port or 25,
        "user": conn.login,
        "password": conn.password,
        "starttls": str(extra.get("starttls")).lower() == "true",
        "from_email": extra.get("from_email"),
    }


def airflow_api_settings(conn_id: str) -> dict | None:
    """URL, login and password of Airflow's own REST API (connection type http), for the
    command line to answer approval tasks; None without the connection or without Airflow."""
    conn = _connection(conn_id)
    if conn is None:
        return None
    host = conn.host or "localhost"
    if "://" not in host:
        host = f"{conn.schema or 'http'}://{host}"
    if conn.port:
        host = f"{host}:{conn.port}"
    return {"url": host.rstrip("/"), "username": conn.login or "", "password": conn.password or ""}


class InsecureConnection(Refusal):
    """A connection that would skip checking the server's identity: a refusal (the
    configuration must change; trying again cannot help)."""

    outcome = "refused"
    advice = (
        "Set the connection's extra host_key to the server's public key (ssh-keyscan"
        " on a trusted network), remove no_host_key_check and allow_host_key_change,"
        " then run again. Nothing was fetched."
    )


@contextmanager
def sftp_client(conn_id: str):
    """A connected ``paramiko.SFTPClient`` from the SFTP provider's hook, closed afterwards.

    The server's host key is always checked: the connection pins it in its extra ``host_key``
    (``ssh-ed25519 AAAA...``), or the key is in the worker's known_hosts. A connection with
    ``no_host_key_check: true`` or ``allow_host_key_change: true`` is refused: an export of
    children's data is never fetched from a server that was not recognised."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    from .sources.complete import SourceError

    hook = SFTPHook(ssh_conn_id=conn_id)
    skips = [name for name in ("no_host_key_check", "allow_host_key_change") if getattr(hook, name)]
    if skips:  # allow_host_key_change accepts any key the server shows (paramiko's base policy)
        raise InsecureConnection(
            f"connection '{conn_id}' skips the host key check ({', '.join(skips)}): refused,"
            " nothing fetched; set its extra host_key to the server's public key instead"
        )
    try:
        client = hook.get_conn()
    except Exception as err:  # paramiko's and socket's many kinds, said without secrets
        raise SourceError(
            f"cannot open the SFTP connection '{conn_id}' to {hook.remote_host}:"
            f"{hook.port}: {type(err).__name__}: {err}"
        ) from None
    try:
        yield client
    finally:
        hook.close_conn()


class HttpSource:
    """``post_json``, ``get_json`` and ``download`` through the HTTP provider's hook (the
    connection holds the host and the credentials)."""

    def __init__(self, conn_id: str):
        self.conn_id = conn_id

    def _run(self, method: str, endpoint: str, **kwargs):
        from airflow.providers.http.hooks.http import HttpHook

        from .sources.complete import SourceError

        try:
            return HttpHook(method=method, http_conn_id=self.conn_id).run(endpoint, **kwargs)
        except Exception as err:  # refused, timed out, 4xx/5xx: one clear line
            raise SourceError(
                f"{method} {endpoint} through connection '{self.conn_id}' failed:"
                f" {type(err).__name__}: {str(err)[:300]}"
            ) from None

    def post_json(self, endpoint: str, body: dict) -> dict:
        return self._run("POST", endpoint, json=body).json()

    def get_json(self, endpoint: str) -> dict:
        return self._run("GET", endpoint).json()

    def download(self, endpoint: str, f) -> None:
        """The response's body into the binary file ``f``, a chunk at a time."""
        response = self._run("GET", endpoint, extra_options={"stream": True})
        for chunk in response.iter_content(1 << 20):
            f.write(chunk)


def object_storage_path(url: str, conn_id: str | None = None):
    """An Airflow ``ObjectStoragePath`` for the landing zone (credentials from ``conn_id``)."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(url, conn_id=conn_id) if conn_id else ObjectStoragePath(url)
