"""The one module under include/ that touches Airflow: Airflow connections turned into the
plain settings that senders take. Imported only by tasks, at run time."""

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
