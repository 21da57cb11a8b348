"""The one module under include/ that touches Airflow: Airflow connections turned into the
plain settings that senders and the Airflow API client take. Imported at run time only."""

from __future__ import annotations

SENDGRID_CONN_ID = "sisflow_sendgrid"


def sendgrid_settings(conn_id: str = SENDGRID_CONN_ID) -> dict | None:
    """API key (the connection's password), host (optional, for a local test server) and the
    from address (extra ``from_email``); None when the connection does not exist."""
    from airflow.sdk import BaseHook

    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 (Airflow raises its own "not found" types)
        return None
    host = conn.host or None
    if host and conn.port:
        host = f"{host}:{conn.port}"
    if host and "://" not in host:
        host = f"{conn.schema or 'https'}://{host}"
    return {"api_key": conn.password, "host": host,
            "from_email": conn.extra_dejson.get("from_email")}


def airflow_api_settings(conn_id: str) -> dict | None:
    """URL, login and password of Airflow's own REST API (connection type http), for the
    command line to answer approval tasks; None without the connection or without Airflow."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 (not found, or no Airflow configuration at hand)
        return None
    host = conn.host or "localhost"
    if "://" not in host:
        host = f"{conn.schema or 'http'}://{host}"
    if conn.port:
        host = f"{host}:{conn.port}"
    return {"url": host.rstrip("/"), "username": conn.login or "",
            "password": conn.password or ""}
